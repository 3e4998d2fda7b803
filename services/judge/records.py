"""What the judge takes and gives back, as plain dataclasses (the servicer maps them to protobufs)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from services.common.errors import ItemError
from services.judge.usage import Usage


class Outcome(enum.Enum):
    """Mirrors `polyglot.v1.GradeOutcome` (`GRADE_OUTCOME_<name>`)."""

    GRADED = "GRADED"
    LANGUAGE_MISMATCH = "LANGUAGE_MISMATCH"  # wrong language: score 1, no model call (the paper's rule)
    UNPARSABLE = "UNPARSABLE"  # no valid verdict even after one repair request
    ERROR = "ERROR"  # the item could not be judged (retries exhausted, key rejected, ...)


@dataclass(frozen=True)
class GradeItem:
    prompt: str
    response: str
    target_language: str  # ISO 639-1
    id: str = ""
    response_language: str = ""  # given by the caller: the judge then asks no lid service


@dataclass(frozen=True)
class GradeJob:
    items: list[GradeItem]
    provider: str = ""  # "" = the configured default
    model: str = ""
    template: str = ""  # name or artifact URI; "" = helpfulness
    translate_first: bool = False
    run_id: str = ""


@dataclass(frozen=True)
class GradeRecord:
    index: int
    id: str
    score: int  # 1..6; 0 when not graded (UNPARSABLE, ERROR)
    reasoning: str
    raw_reply: str  # every reply of the judge model for this item; a repair reply follows REPAIR_SEPARATOR
    outcome: Outcome
    detected_language: str = ""
    cached: bool = False
    note: str = ""  # why: the gate's verdict, the parse error of an UNPARSABLE reply
    error: ItemError | None = None

    @classmethod
    def failed(cls, index: int, id: str, error: ItemError, detected_language: str = "") -> GradeRecord:
        """An item the judge could not grade: no score, outcome ERROR, and why."""
        return cls(index, id, 0, "", "", Outcome.ERROR, detected_language, error=error)


@dataclass(frozen=True)
class TranslationRecord:
    index: int
    text: str
    cached: bool = False
    error: ItemError | None = None


@dataclass(frozen=True)
class Detection:
    """A language identification: `language` is an ISO 639-1 code, or "" if the registry lacks the label."""

    language: str
    label: str = ""
    probability: float = 0.0
    error: str | None = None
    given: bool = False  # the caller's `response_language`, not a lid prediction


class LanguageIdentifier(Protocol):
    async def identify(self, texts: list[str]) -> list[Detection]: ...


@dataclass(frozen=True)
class Graded:
    records: list[GradeRecord]
    usage: Usage  # this call's requests, tokens, cache hits and cost


@dataclass(frozen=True)
class Translated:
    records: list[TranslationRecord]
    usage: Usage


REPAIR_SEPARATOR = "\n\n----- repair request -----\n\n"
