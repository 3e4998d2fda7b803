"""Machine translation for the MT mixes (§5.1) and for chat prompts no human translated.

The core takes any `translate(texts, source, target) -> texts`; the study passes the judge service's
`Translate` (`judge_translator`). Conversations are translated turn by turn, so the Guanaco role markers
never pass through the translation model and come back intact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flows.data import guanaco
from services.common.errors import FailedPrecondition

Translate = Callable[[Sequence[str], str, str], Sequence[str]]


@dataclass(frozen=True)
class Translator:
    """A translate function plus the identity of the model behind it (part of artifact keys)."""

    translate: Translate
    model: str  # e.g. "judge:openai/gpt-3.5-turbo"
    batch_size: int = 32

    def __call__(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        out: list[str] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            translated = list(self.translate(batch, source, target))
            if len(translated) != len(batch):
                raise RuntimeError(f"translate returned {len(translated)} texts for {len(batch)}")
            out.extend(translated)
        return out


def translate_conversations(texts: Sequence[str], translator: Translator, target: str, source: str = "en") -> list[str]:
    """Translate Guanaco conversations turn by turn into `target`; markers and turn order are kept."""
    parsed = [guanaco.parse(text) for text in texts]
    contents = [turn.content for turns in parsed for turn in turns if turn.content]
    translated = iter(translator(contents, source, target))
    out = []
    for turns in parsed:
        new_turns = [guanaco.Turn(turn.role, next(translated).strip() if turn.content else "") for turn in turns]
        out.append(guanaco.format_turns(new_turns))
    return out


def judge_translator(
    client: Any, provider: str = "", model: str = "", run_id: str = "", batch_size: int = 32
) -> Translator:
    """The judge service's `Translate` through its typed client (`services.judge.client.JudgeClient`).

    An item the service reports as failed raises, naming it: a mix or a prompt set with a silently
    untranslated item would measure the wrong thing. (The judge caches translations itself, and the
    artifacts built from them are keyed by `Translator.model`, so a rerun translates nothing.)
    """

    def translate(texts: Sequence[str], source: str, target: str) -> list[str]:
        result = client.translate(
            list(texts), target_language=target, source_language=source, provider=provider, model=model, run_id=run_id
        )
        records = sorted(result.records, key=lambda r: r.index)
        failed = [r for r in records if r.error is not None]
        if failed:
            first = failed[0]
            raise FailedPrecondition(
                f"Translate {source}->{target} failed for {len(failed)} of {len(texts)} texts; "
                f"first: item {first.index}: {first.error.code} {first.error.message}"
            )
        if [r.index for r in records] != list(range(len(texts))):
            raise FailedPrecondition(f"Translate returned {len(records)} results for {len(texts)} texts")
        return [r.text for r in records]

    return Translator(translate, f"judge:{provider or 'default'}/{model or 'default'}", batch_size)
