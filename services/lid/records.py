"""The records a check returns, apart from `core.py` so that `lcb.py` (which `core` calls) can build them.

`services.lid.core` re-exports them: import them from there.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from operator import attrgetter


@dataclass(frozen=True, slots=True)
class Prediction:
    """One label: `language` is its canonical code (ISO 639-1 where one exists, else ISO 639-3)."""

    language: str
    script: str
    raw_label: str  # the model's own, e.g. `__label__de` or `__label__deu_Latn`
    probability: float

    # Pickled by position: lid's worker processes (`pool.py`) send checks back to the serving process, and
    # the default pickling of a frozen slots dataclass (state dict, then a setattr per field) costs twice as much.
    def __reduce__(self):
        return Prediction, (self.language, self.script, self.raw_label, self.probability)


@dataclass(frozen=True, slots=True)
class LineVerdict:
    """One kept line of an `lcb` check."""

    text: str  # the kept line after the benchmark's cleaning
    language: str  # canonical code of the top label ("" when fastText gave none)
    raw_label: str  # the model's label
    probability: float
    passed: bool  # language == expected and probability > 0.3

    def __reduce__(self):  # by position, as Prediction's
        return new_line_verdict, (self.text, self.language, self.raw_label, self.probability, self.passed)


@dataclass(frozen=True, slots=True)
class LanguageCheck:
    """Line-level check of one text against its expected language, plus the whole-text verdict.

    `line_pass_rate` = lines_passed / lines_checked (0 when no line was long enough).
    metric `share`: lines split on every line boundary, under `min_line_tokens` tokens skipped
    (`text.count_tokens`), a line passes when its top label is the expected language; `passed` is the
    whole text's verdict (`detected.language == expected`).
    metric `lcb`: the Language Confusion Benchmark's check (`lcb.py`): `line_pass` (LPR: no kept line
    wrong; None when no line was kept, which the benchmark skips), `word_pass` (WPR: no English word;
    None where undefined, `word_note` says why), `lines` the kept lines with label and probability;
    `passed` = `line_pass is True`, `detected` the cleaned reply as one text.
    """

    index: int
    line_pass_rate: float
    lines_checked: int
    lines_passed: int
    detected: Prediction | None  # whole text, newlines → spaces
    passed: bool  # share: detected.language == expected; lcb: line_pass is True
    error: str | None = None
    field: str | None = None  # e.g. "items[2].expected_language"
    metric: str = "share"  # "share" | "lcb"
    line_pass: bool | None = None  # LCB line-level verdict (None in share mode, or no line kept)
    word_pass: bool | None = None  # LCB word-level verdict, None where undefined
    lines: tuple[LineVerdict, ...] = ()  # kept lines, in order (lcb mode)
    word_note: str | None = None  # why word_pass is None (lcb mode)

    def __reduce__(self):  # by position, as Prediction's
        return LanguageCheck, _check_fields(self)


_check_fields = attrgetter(*(f.name for f in fields(LanguageCheck)))


# A positional constructor that skips the frozen dataclass __init__ (see core.new_prediction): one per
# kept line, and the client builds one per line of every reply.
_new = object.__new__
_set_line_text, _set_line_lang = LineVerdict.text.__set__, LineVerdict.language.__set__  # type: ignore[attr-defined]
_set_line_raw, _set_line_prob = LineVerdict.raw_label.__set__, LineVerdict.probability.__set__  # type: ignore[attr-defined]
_set_line_passed = LineVerdict.passed.__set__  # type: ignore[attr-defined]


def new_line_verdict(text: str, language: str, raw_label: str, probability: float, passed: bool) -> LineVerdict:
    obj = _new(LineVerdict)
    _set_line_text(obj, text)
    _set_line_lang(obj, language)
    _set_line_raw(obj, raw_label)
    _set_line_prob(obj, probability)
    _set_line_passed(obj, passed)
    return obj
