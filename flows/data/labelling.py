"""Language labels for conversations, and the paper's confidence filter (§3.1: keep LID confidence ≥ 0.8).

The core takes any `identify(texts) -> [(language, probability)]`, so it runs the same against the lid
service (`service_labeller`, what the study uses) and against the service's core in-process
(`core_labeller`, for tests and notebooks). Text is identified with the Guanaco role markers removed,
as the paper's labelling script does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.data.guanaco import strip_role_markers
from flows.data.sources import Conversation
from services.common import languages

Identify = Callable[[Sequence[str]], Sequence[tuple[str, float]]]


@dataclass(frozen=True)
class Labeller:
    """An identify function plus the identity of the model behind it (part of every artifact key)."""

    identify: Identify
    model: str  # e.g. "lid:lid.176.ftz@8f3472cfe8738a7b"
    batch_size: int = 256


@dataclass(frozen=True)
class LabelledConversation:
    id: str
    text: str
    lang: str  # ISO 639-1 from the registry; the model's own label for languages outside it; "" if none
    prob: float
    source_lang: str = ""


def label_language(label: str) -> str:
    """A model label (`__label__de`, `deu_Latn`, `de`) as the registry's ISO code, else the bare label."""
    lang = languages.resolve(label)
    return lang.code if lang else label.strip().removeprefix("__label__")


def label_conversations(
    conversations: Sequence[Conversation],
    labeller: Labeller,
    on_progress: Callable[[int], None] | None = None,
) -> list[LabelledConversation]:
    """Label every conversation (top-1 language and its probability), in order, in batches."""
    labelled: list[LabelledConversation] = []
    for start in range(0, len(conversations), labeller.batch_size):
        batch = conversations[start : start + labeller.batch_size]
        predictions = list(labeller.identify([strip_role_markers(c.text) for c in batch]))
        if len(predictions) != len(batch):
            raise RuntimeError(f"identify returned {len(predictions)} labels for {len(batch)} texts")
        for conv, (lang, prob) in zip(batch, predictions, strict=True):
            labelled.append(LabelledConversation(conv.id, conv.text, lang, round(float(prob), 6), conv.source_lang))
        if on_progress:
            on_progress(len(batch))
    return labelled


def confident(rows: Iterable[LabelledConversation], threshold: float) -> list[LabelledConversation]:
    """Rows whose top language is known and whose confidence is at least `threshold` (paper: 0.8)."""
    return [row for row in rows if row.lang and row.prob >= threshold]


def language_counts(rows: Iterable[LabelledConversation]) -> dict[str, int]:
    """Rows per language, most frequent first (ties by code), as a plain dict for manifests."""
    counts = Counter(row.lang for row in rows)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _identify_with(call: Callable[..., Sequence[Any]]) -> Identify:
    def identify(texts: Sequence[str]) -> list[tuple[str, float]]:
        out = []
        for result in call(list(texts), k=1, strip_role_markers=True):
            top = result.predictions[0] if result.predictions else None  # none: the item failed alone
            out.append((top.language or label_language(top.raw_label), float(top.probability)) if top else ("", 0.0))
        return out

    return identify


def _model_id(info: Any) -> str:
    # The same id in-process and through the service: both run the lid service's core on the same file.
    return f"lid:{Path(info.path).name}@{info.sha256[:16]}"


def service_labeller(client: Any, batch_size: int = 256) -> Labeller:
    """The lid service through its typed client (`services.lid.client.LidClient`): what the study uses."""
    return Labeller(_identify_with(client.identify), _model_id(client.model_info()), batch_size)


def core_labeller(identifier: Any = None, batch_size: int = 256) -> Labeller:
    """The lid service's core in this process (`services.lid.core.LanguageIdentifier`; default lid.176)."""
    if identifier is None:
        from services.lid.core import LanguageIdentifier

        identifier = LanguageIdentifier()
    return Labeller(_identify_with(identifier.identify), _model_id(identifier.model_info()), batch_size)
