"""LLM translation (`Translate`), cached like grading.

Used to translate evaluation prompts into study languages, for the paper's machine-translated training
mixes (Kew et al. §5.1), and for translate-then-judge. The prompt (`templates/translate.txt`) asks to
keep the structure, code and names; the reply is taken as the translation, with the source text's own
leading and trailing whitespace put back (models drop it; a mix builder joining turns needs it).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from services.common import languages
from services.common.errors import InvalidArgument
from services.judge import limits
from services.judge.cache import ReplyCache, cache_key
from services.judge.prompts import TRANSLATE, Template, TemplateLibrary
from services.judge.providers import Provider, ProviderError, ProviderPool, TransientError
from services.judge.records import ItemError, TranslationRecord
from services.judge.settings import JudgeSettings
from services.judge.usage import Meter, Usage, UsageBook, check_run_id

log = logging.getLogger("polyglot.judge.translation")


def language_code(value: str, field: str, *, required: bool) -> str:
    """The registry's ISO 639-1 code for `value` (`de`, `deu_Latn`, `German`, `pt-BR` ...); "" if optional and empty."""
    if not value.strip():
        if required:
            raise InvalidArgument("missing: give an ISO 639-1 code such as de", field=field)
        return ""
    lang = languages.resolve(value)
    if lang is None:
        raise InvalidArgument(f"unknown language {value!r} (see services/common/languages.py)", field=field)
    return lang.code


@dataclass(frozen=True)
class TranslateJob:
    texts: list[str]
    target_language: str
    source_language: str = ""  # "" = let the model detect it
    provider: str = ""
    model: str = ""
    run_id: str = ""


@dataclass
class Translator:
    """Translates texts through a provider, with the reply cache and usage accounting of the judge."""

    settings: JudgeSettings
    providers: ProviderPool
    cache: ReplyCache | None
    usage: UsageBook
    templates: TemplateLibrary

    async def template(self) -> Template:
        return await self.templates.aload("translate", TRANSLATE, "template", self.settings.template_read_timeout)

    async def translate(self, job: TranslateJob, call_usage: Usage | None = None) -> list[TranslationRecord]:
        target = language_code(job.target_language, "target_language", required=True)
        source = language_code(job.source_language, "source_language", required=False)
        run_id = check_run_id(job.run_id)
        limits.check_count(len(job.texts), self.settings, "texts")
        model = limits.check_model(job.model or self.settings.model, self.settings, "model.model")
        provider = self.providers.get(job.provider or self.settings.provider, field="model.provider")
        template = await self.template()
        for i, text in enumerate(job.texts):
            limits.check_prompt(template.render(text=text, target_language="", source_language=""), self.settings,
                                f"texts[{i}]")  # fmt: skip
        await self.usage.load(run_id)
        meter = self.usage.meter(run_id, call_usage)
        try:
            # Every text finishes (its paid reply cached) before a store or budget failure fails the call.
            results = await asyncio.gather(
                *(
                    self.translate_one(i, text, source, target, provider, model, template, meter)
                    for i, text in enumerate(job.texts)
                ),
                return_exceptions=True,
            )
            failure = next((r for r in results if isinstance(r, BaseException)), None)
            if failure is not None:
                raise failure
            return list(results)  # type: ignore[arg-type]
        finally:
            await self.usage.save(run_id)

    async def translate_one(
        self,
        index: int,
        text: str,
        source: str,
        target: str,
        provider: Provider,
        model: str,
        template: Template,
        meter: Meter,
    ) -> TranslationRecord:
        """Never raises for a bad reply or a failed request: the record carries the error."""
        if not text.strip() or source == target:
            return TranslationRecord(index, text)  # nothing to translate: no call
        params = {
            "temperature": self.settings.temperature,
            "seed": self.settings.seed,
            "max_tokens": self.settings.translate_max_tokens,
        }
        key = cache_key(
            "translate",
            provider.name,
            model,
            template.sha256,
            {"text": text, "source": source, "target": target},
            params,
        )
        if self.cache is not None and (hit := await self.cache.get("translate", key)) is not None:
            meter.cached()
            return TranslationRecord(index, hit["text"], cached=True)
        if self.cache is not None:
            self.cache.check_room()
        source_name = languages.get(source).name if source else "its original language"
        messages = template.messages(text=text, target_language=languages.get(target).name, source_language=source_name)
        try:
            completion = await provider.complete(
                messages,
                model=model,
                json_mode=False,
                max_tokens=self.settings.translate_max_tokens,
                meter=meter,
            )
        except TransientError as exc:
            message = f"gave up after {self.settings.max_attempts} attempts: {exc.reason}"
            return TranslationRecord(index, "", error=ItemError("UNAVAILABLE", message, f"texts[{index}]"))
        except ProviderError as exc:
            return TranslationRecord(index, "", error=ItemError(exc.code, exc.message, f"texts[{index}]"))
        body = completion.text.strip()
        if not body:
            return TranslationRecord(
                index, "", error=ItemError("INTERNAL", "the model returned an empty translation", f"texts[{index}]")
            )
        lead = text[: len(text) - len(text.lstrip())]
        trail = text[len(text.rstrip()) :]
        translated = lead + body + trail
        if self.cache is not None:
            await self.cache.put(
                "translate",
                key,
                {"provider": provider.name, "model": model, "source": source, "target": target, "text": translated},
            )
        return TranslationRecord(index, translated)
