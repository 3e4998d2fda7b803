"""Grading chat replies: the language gate, then an LLM judge on a 6-point helpfulness scale.

The two steps follow the paper (Kew et al., "Turning English-centric LLMs Into Polyglots"): a reply whose
language fails the gate gets the lowest score, 1, without asking the judge. The rest are Polyglot's choices
unless the `paper` profile sets the paper's: the gate compares the reply's language with the target language
by default (the paper's code compares it with the prompt's LID label: `judge.gate_language: prompt`); the
default rubric (`templates/helpfulness.txt`) is Polyglot's own wording (the paper's system and user messages
come with `judge.template: paper`); both answer `{"reasoning": str, "score": int}`. A reply without a valid
verdict (not JSON, no score, a score outside 1..6) gets exactly one repair request, Polyglot's default (the
paper has none: `judge.repair: false`); if that fails too the item is recorded as UNPARSABLE with the
judge's raw replies, never given a guessed score.

What a call may cost is checked before anything is sent (`limits.py`: the model, the number of items, each
prompt's size; `usage.py`: the run's budget). An item the judge could not grade because its provider or its
store failed (retries exhausted, a store that keeps failing, a full disk, the budget) is not answered as an
ERROR item that a caller could store as done (issue 19, row 7): the call fails with a retryable
UNAVAILABLE, or RESOURCE_EXHAUSTED, once the other items have finished, and their paid replies stay in the
cache, so a retry pays only for what is missing. ERROR items remain for what a retry would not change (a
rejected key, a model the endpoint does not know).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.common import languages
from services.common.errors import (
    TRANSIENT_CODES,
    FailedPrecondition,
    InvalidArgument,
    PolyglotError,
    ResourceExhausted,
    Unavailable,
)
from services.judge import limits
from services.judge.cache import ReplyCache, cache_key
from services.judge.parsing import PARSERS, ReplyError
from services.judge.prompts import GRADE, REPAIR, Template, TemplateLibrary
from services.judge.providers import Provider, ProviderError, ProviderPool, TransientError
from services.judge.records import (
    REPAIR_SEPARATOR,
    Detection,
    GradeItem,
    GradeJob,
    GradeRecord,
    ItemError,
    LanguageIdentifier,
    Outcome,
)
from services.judge.settings import JudgeSettings
from services.judge.translation import Translator, language_code
from services.judge.usage import Meter, Usage, UsageBook, check_run_id

log = logging.getLogger("polyglot.judge.grading")
GATE_SCORE = 1


@dataclass(frozen=True)
class _Plan:
    """A validated job: everything an item needs, resolved once."""

    job: GradeJob
    targets: list[str]
    provider: Provider
    model: str
    template: Template
    repair: Template
    translate: Template | None
    run_id: str


def _language_name(code: str) -> str:
    lang = languages.resolve(code)
    return f"{lang.name} ({lang.code})" if lang else repr(code)


@dataclass
class Grader:
    """Grades items with the language gate; the judge's parts are shared with its `Translator`."""

    settings: JudgeSettings
    providers: ProviderPool
    cache: ReplyCache | None
    usage: UsageBook
    templates: TemplateLibrary
    translator: Translator
    identifier: LanguageIdentifier | None

    # -- validation -------------------------------------------------------------------------------------------

    def _validate_items(self, items: list[GradeItem]) -> list[str]:
        limits.check_count(len(items), self.settings, "items")
        targets = []
        for i, item in enumerate(items):
            if not item.prompt.strip():
                raise InvalidArgument("empty prompt", field=f"items[{i}].prompt")
            if not item.response.strip():
                raise InvalidArgument("empty response: nothing to grade", field=f"items[{i}].response")
            targets.append(language_code(item.target_language, f"items[{i}].target_language", required=True))
            if not item.response_language.strip() and self.identifier is None:
                raise FailedPrecondition(
                    "no lid service configured (POLYGLOT_JUDGE_LID_ADDRESS): give response_language",
                    field=f"items[{i}].response_language",
                )
        return targets

    async def plan(self, job: GradeJob) -> _Plan:
        """Check the whole request before any call: bad input fails it as INVALID_ARGUMENT naming the field."""
        targets = self._validate_items(job.items)
        run_id = check_run_id(job.run_id)
        model = limits.check_model(job.model or self.settings.model, self.settings, "judge.model")
        provider = self.providers.get(job.provider or self.settings.provider, field="judge.provider")
        timeout = self.settings.template_read_timeout
        template = await self.templates.aload(job.template, GRADE, "template", timeout)
        repair = await self.templates.aload("repair", REPAIR, "template", timeout)
        translate = await self.translator.template() if job.translate_first else None
        for i, (item, target) in enumerate(zip(job.items, targets, strict=True)):
            prompt = template.render(prompt=item.prompt, response=item.response, language=languages.get(target).name)
            limits.check_prompt(prompt, self.settings, f"items[{i}].response")
        return _Plan(job, targets, provider, model, template, repair, translate, run_id)

    # -- the language gate ------------------------------------------------------------------------------------

    async def _detect(self, items: list[GradeItem]) -> list[Detection]:
        """The caller's response_language where given; the lid service's top prediction otherwise."""
        detections: list[Detection | None] = []
        missing: list[int] = []
        for i, item in enumerate(items):
            given = item.response_language.strip()
            if given:
                lang = languages.resolve(given)
                detections.append(Detection(lang.code if lang else given.lower(), label=given, given=True))
            else:
                detections.append(None)
                missing.append(i)
        if missing:
            assert self.identifier is not None  # checked in plan()
            found = await self.identifier.identify([items[i].response for i in missing])
            for i, detection in zip(missing, found, strict=True):
                detections[i] = detection
        return detections  # type: ignore[return-value]

    @staticmethod
    def _gate(index: int, item: GradeItem, target: str, detection: Detection) -> GradeRecord | None:
        """Score 1 without a model call when the reply is not in the target language; None when it is."""
        if detection.error:
            error = f"language identification failed: {detection.error}"
            return GradeRecord.failed(index, item.id, ItemError("INVALID_ARGUMENT", error, f"items[{index}].response"))
        if detection.language == target:
            return None
        seen = detection.language or detection.label.removeprefix("__label__") or "unknown"
        if detection.language:
            what = _language_name(detection.language)
        elif detection.label:
            what = f"{detection.label!r}, a language outside the registry"
        else:
            what = "no identifiable language"
        if detection.given:
            confidence = " (response_language given by the caller)"
        else:
            confidence = f" (lid: {detection.label or 'no label'}, p={detection.probability:.2f})"
        note = (
            f"language gate: the response is in {what}{confidence} but the target is {_language_name(target)}; "
            f"scored {GATE_SCORE} without calling the judge, as the paper does"
        )
        return GradeRecord(index, item.id, GATE_SCORE, note, "", Outcome.LANGUAGE_MISMATCH, seen, note=note)

    # -- grading ----------------------------------------------------------------------------------------------

    async def grade(self, job: GradeJob, call_usage: Usage | None = None) -> AsyncIterator[GradeRecord]:
        """Records in the order items finish; this call's account accumulates in `call_usage`.
        Validation errors raise before the first record."""
        plan = await self.plan(job)
        detections = await self._detect(job.items)
        await self.usage.load(plan.run_id)
        if self.cache is not None and self.cache.unsaved:
            await self.cache.flush()
        meter = self.usage.meter(plan.run_id, call_usage)
        tasks = [
            asyncio.create_task(self._grade_one(i, item, plan.targets[i], detections[i], plan, meter))
            for i, item in enumerate(job.items)
        ]
        outcomes: collections.Counter[str] = collections.Counter()
        unanswered: list[GradeRecord] = []
        try:
            for next_done in asyncio.as_completed(tasks):
                record = await next_done
                outcomes[record.outcome.value] += 1
                if _retryable(record):
                    unanswered.append(record)  # a retry could grade it: never answered as a finished item
                else:
                    yield record
            if unanswered:
                raise _call_failure(unanswered, len(job.items))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await self.usage.save(plan.run_id)
            except Exception:  # the account stays in memory; a failed snapshot must not fail the call
                log.exception("could not save the usage of run %s", plan.run_id)
            log.info(json.dumps({
                "event": "judge_grade", "run_id": plan.run_id, "provider": plan.provider.name, "model": plan.model,
                "template": plan.template.name, "items": len(job.items), "finished": sum(outcomes.values()),
                "outcomes": dict(outcomes), "requests": meter.call.requests, "cached": meter.call.cached,
                "cost_usd": round(meter.call.cost_usd, 6),
            }))  # fmt: skip

    async def _grade_one(
        self, index: int, item: GradeItem, target: str, detection: Detection, plan: _Plan, meter: Meter
    ) -> GradeRecord:
        try:
            gated = self._gate(index, item, target, detection)
            if gated is not None:
                return gated
            return await self._judge(index, item, target, plan, meter)
        except asyncio.CancelledError:
            raise
        except PolyglotError as exc:  # the store or the budget: its code decides whether the call fails
            return GradeRecord.failed(index, item.id, ItemError(exc.code, exc.message, exc.field), target)
        except Exception as exc:  # recorded, never dropped
            log.exception("grading item %d failed", index)
            return GradeRecord.failed(index, item.id, ItemError("INTERNAL", f"{type(exc).__name__}: {exc}"), target)

    async def _judge(self, index: int, item: GradeItem, target: str, plan: _Plan, meter: Meter) -> GradeRecord:
        response = item.response
        if plan.translate is not None and target != "en":
            translated = await self.translator.translate_one(
                index, item.response, target, "en", plan.provider, plan.model, plan.translate, meter
            )
            if translated.error:
                error = ItemError(
                    translated.error.code, f"translation failed: {translated.error.message}", f"items[{index}].response"
                )
                return GradeRecord.failed(index, item.id, error, target)
            response = translated.text
        params = {
            "temperature": self.settings.temperature,
            "seed": self.settings.seed,
            "max_tokens": self.settings.max_tokens,
            **plan.provider.reply_shape,
        }
        inputs = {
            "prompt": item.prompt,
            "response": response,
            "target_language": target,
            "translated_to_en": plan.translate is not None and target != "en",
        }
        key = cache_key("grade", plan.provider.name, plan.model, plan.template.sha256, inputs, params)
        if self.cache is not None and (hit := await self.cache.get("grade", key)) is not None:
            meter.cached()
            return GradeRecord(
                index,
                item.id,
                hit["score"],
                hit["reasoning"],
                hit["raw_reply"],
                Outcome[hit["outcome"]],
                target,
                cached=True,
                note=hit.get("note", ""),
            )
        if self.cache is not None:
            self.cache.check_room()
        record = await self._ask(index, item, target, response, plan, meter)
        if self.cache is not None and record.outcome in (Outcome.GRADED, Outcome.UNPARSABLE):
            await self.cache.put(
                "grade",
                key,
                {
                    "provider": plan.provider.name,
                    "model": plan.model,
                    "template": plan.template.name,
                    "outcome": record.outcome.value,
                    "score": record.score,
                    "reasoning": record.reasoning,
                    "raw_reply": record.raw_reply,
                    "note": record.note,
                },
            )
        return record

    async def _ask(
        self, index: int, item: GradeItem, target: str, response: str, plan: _Plan, meter: Meter
    ) -> GradeRecord:
        messages = plan.template.messages(prompt=item.prompt, response=response, language=languages.get(target).name)
        replies: list[str] = []
        first_error: ReplyError | None = None
        for attempt in range(2):  # the reply, then at most one repair request
            try:
                completion = await plan.provider.complete(
                    messages, model=plan.model, json_mode=True, max_tokens=self.settings.max_tokens, meter=meter
                )
            except TransientError as exc:
                error = ItemError("UNAVAILABLE", f"gave up after {self.settings.max_attempts} attempts: {exc.reason}")
                return GradeRecord(
                    index, item.id, 0, "", REPAIR_SEPARATOR.join(replies), Outcome.ERROR, target, error=error
                )
            except ProviderError as exc:
                return GradeRecord(
                    index,
                    item.id,
                    0,
                    "",
                    REPAIR_SEPARATOR.join(replies),
                    Outcome.ERROR,
                    target,
                    error=ItemError(exc.code, exc.message),
                )
            replies.append(completion.text)
            try:
                verdict = PARSERS[plan.template.parsing](completion.text)
            except ReplyError as exc:
                if attempt == 0 and not plan.template.repair:  # the paper's rule: counted unparsable, dropped
                    return GradeRecord(
                        index, item.id, 0, "", completion.text, Outcome.UNPARSABLE, target, note=f"unparsable: {exc}"
                    )
                if attempt == 0:
                    first_error = exc
                    messages = [
                        *messages,
                        {"role": "assistant", "content": completion.text},
                        {"role": "user", "content": plan.repair.render(error=str(exc))},
                    ]
                    continue
                note = f"unparsable: {first_error}; after one repair request: {exc}"
                return GradeRecord(
                    index, item.id, 0, "", REPAIR_SEPARATOR.join(replies), Outcome.UNPARSABLE, target, note=note
                )
            note = f"repaired: the first reply was unusable ({first_error})" if first_error else ""
            return GradeRecord(
                index,
                item.id,
                verdict.score,
                verdict.reasoning,
                REPAIR_SEPARATOR.join(replies),
                Outcome.GRADED,
                target,
                note=note,
            )
        raise AssertionError("unreachable")  # pragma: no cover


def _retryable(record: GradeRecord) -> bool:
    """An item whose failure a later call may not repeat: a provider or store outage, a full disk, the budget."""
    return record.error is not None and (
        record.error.code in TRANSIENT_CODES or record.error.code == ResourceExhausted.code
    )


def _call_failure(unanswered: list[GradeRecord], total: int) -> PolyglotError:
    """The whole call's error for its unanswered items: RESOURCE_EXHAUSTED if any hit a budget or a full
    store (retrying will not help until someone acts), else UNAVAILABLE (the client and the study retry)."""
    first = min(unanswered, key=lambda r: r.index)
    exhausted = next((r for r in unanswered if r.error.code == ResourceExhausted.code), None)
    shown = exhausted or first
    message = (
        f"{len(unanswered)} of {total} items were not graded (first: items[{shown.index}]: {shown.error.message}); "
        "the replies of the others are cached, so a retry does not pay for them again"
    )
    if exhausted is not None:
        return ResourceExhausted(message, field=exhausted.error.field)
    return Unavailable(message)
