"""Language-agreement metrics for flows: pure functions over `Identification`s (no I/O, no model).

The paper (Kew et al., "Turning English-centric LLMs Into Polyglots") identifies the language of each
prompt and response with OpenLID and reports, per item:

- `lang_match`: the response is in the prompt's language (prompt label == response label);
- `tgt_lang`: the response is in the language the prompt asked for (response label == target).

With `min_confidence`, a prediction below it counts as "no language", which never matches: an
unsure identification is not evidence that the reply is in the right language.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.common.languages import normalise
from services.lid.core import Identification, Prediction
from services.lid.modelfile import LABEL_PREFIX


def language_of(item: Identification | Prediction | None, min_confidence: float = 0.0) -> str | None:
    """The language a top prediction stands for: its canonical code, else the raw label without its
    prefix (a prediction built by hand without one); None when there is no
    prediction, the item failed, or the probability is under `min_confidence`."""
    top = item.top if isinstance(item, Identification) else item
    if top is None or top.probability < min_confidence:
        return None
    return top.language or top.raw_label.removeprefix(LABEL_PREFIX)


def lang_match(
    prompt: Identification | Prediction | None,
    response: Identification | Prediction | None,
    *,
    min_confidence: float = 0.0,
) -> bool:
    """Prompt and response identified as the same language (both confidently, with `min_confidence`)."""
    prompt_lang = language_of(prompt, min_confidence)
    return prompt_lang is not None and prompt_lang == language_of(response, min_confidence)


def tgt_lang(response: Identification | Prediction | None, target: str, *, min_confidence: float = 0.0) -> bool:
    """Response identified as `target` (ISO 639-1, ISO 639-3, `xxx_Scrp`; InvalidArgument naming `target`)."""
    return language_of(response, min_confidence) == normalise(target, "target")


@dataclass(frozen=True, slots=True)
class LangAgreement:
    prompt_language: str | None
    response_language: str | None
    lang_match: bool
    tgt_lang: bool | None  # None when no target was given


def agreement(
    prompt: Identification | Prediction | None,
    response: Identification | Prediction | None,
    target: str | None = None,
    *,
    min_confidence: float = 0.0,
) -> LangAgreement:
    """Both metrics for one prompt/response pair."""
    return LangAgreement(
        prompt_language=language_of(prompt, min_confidence),
        response_language=language_of(response, min_confidence),
        lang_match=lang_match(prompt, response, min_confidence=min_confidence),
        tgt_lang=None if target is None else tgt_lang(response, target, min_confidence=min_confidence),
    )


def rates(items: Iterable[LangAgreement]) -> dict[str, float | int | None]:
    """Shares over items: `lang_match` over all, `tgt_lang` over those with a target (None if none)."""
    items = list(items)
    targeted = [a.tgt_lang for a in items if a.tgt_lang is not None]
    return {
        "n": len(items),
        "lang_match": sum(a.lang_match for a in items) / len(items) if items else None,
        "n_target": len(targeted),
        "tgt_lang": sum(targeted) / len(targeted) if targeted else None,
    }
