"""The Language Confusion Benchmark's check of one reply, exactly as its `compute_metrics.py` does it.

Marchisio et al. 2024, "Understanding and Mitigating Language Confusion in LLMs"; the benchmark's code
(for-ai/language-confusion, Apache-2.0) is the reference, rule by rule:

1. cut the reply at the first `\\nQ:` (a base model's next few-shot question) and strip it;
2. delete ASCII punctuation (`string.punctuation`), delete `،`, turn `—` into a space;
3. split on `\\n` only; keep the lines of at least 5 tokens: jieba for Chinese, MeCab (fugashi, `-O wakati`)
   for Japanese, whitespace for every other language; the expected language picks the tokenizer;
4. a kept line is wrong when fastText's top label is not the expected language **or** its probability
   is at most 0.3; the reply passes the line level (LPR) when no kept line is wrong;
5. word level (WPR), for ar hi ja ko ru zh only (latin-script languages would count loanwords): a reply
   without line errors fails when a token of a kept line is an English word: lowercase in the word list
   and longer than 3 letters (compared case-sensitively, as the benchmark does);
6. a reply with no kept line is skipped: it counts in neither LPR nor WPR (`line_pass` is None).
   `score` averages a set of replies as the benchmark does; per (source, language), then per language.

Known difference: the benchmark's Japanese dictionary is `unidic` (a 500 MB download at first use);
here `unidic-lite` (pip-installable, the same UniDic tokenization rules, an older, smaller lexicon), so a
borderline Japanese line may count 4 tokens here and 5 there. The default model here is lid.176.ftz
(the benchmark downloads lid.176.bin); `--model` takes the .bin.

The English word list is data, not code: `POLYGLOT_LID_WORD_LIST` (see services/lid/README.md for its
source and a download command); without it `word_pass` is None and `word_note` says why.

    .venv/bin/python -c "from services.lid.core import LanguageIdentifier; from services.lid.lcb import lcb_check; \\
        print(lcb_check(LanguageIdentifier(), 'Das ist ein ganz normaler Satz hier.\\nQ: next', 'de', None))"
"""

from __future__ import annotations

import functools
import logging
import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from services.lid.records import LanguageCheck, LineVerdict, Prediction, new_line_verdict
from services.lid.text import prepare, strip_markers

THRESHOLD = 0.3  # a line identified with probability <= this is wrong, whatever the label
MIN_TOKENS = 5
WPR_LANGUAGES = frozenset({"ar", "hi", "ja", "ko", "ru", "zh"})
WORD_LIST_SOURCE = (
    "https://gist.githubusercontent.com/wchargin/8927565/raw/d9783627c731268fb2935a731a618aa8e95cf465/words"
)

_PUNCTUATION = str.maketrans("", "", string.punctuation + "،")  # `#` is in string.punctuation


def clean(text: str) -> str:
    """The benchmark's `normalize`: cut at `\\nQ:`, strip, drop punctuation and `،`, `—` -> space."""
    return text.split("\nQ:", 1)[0].strip().translate(_PUNCTUATION).replace("—", " ")


class LanguageIdentifier(Protocol):
    """What a check needs of `services.lid.core.LanguageIdentifier` (which imports this module)."""

    label_info: dict[str, tuple[str, str]]

    def expected_code(self, expected: object, field: str) -> str: ...
    def text(self, item: object, field: str) -> str: ...
    def top_label(self, line: str, field: str) -> tuple[float, str] | None: ...
    def identify_text(self, text: str, field: str) -> Prediction | None: ...


@functools.cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)  # its dictionary load logs at INFO on every process start
    jieba.initialize()
    return jieba


@functools.cache
def _mecab():
    from fugashi import Tagger  # finds unidic-lite's dictionary by itself

    return Tagger("-O wakati -b 50000")


def tokenize(line: str, language: str) -> list[str]:
    """Tokens as the benchmark counts them: jieba (zh), MeCab wakati (ja), whitespace otherwise."""
    if language == "zh":
        return _jieba().lcut(line)
    if language == "ja":
        return _mecab().parse(line).split()
    return line.split()


def load_words(path: str | Path) -> frozenset[str]:
    """The benchmark's English words: lowercase entries of more than 3 letters of a one-word-a-line list."""
    with open(path, encoding="utf-8") as handle:
        return frozenset(word for word in (line.strip() for line in handle) if word.islower() and len(word) > 3)


def _word_note(language: str, words: frozenset[str] | None, line_pass: bool | None) -> str | None:
    if language not in WPR_LANGUAGES:
        return "WPR is defined for ar hi ja ko ru zh only"
    if words is None:
        return "no English word list configured (POLYGLOT_LID_WORD_LIST)"
    if line_pass is None:
        return "no line was long enough to check"
    if not line_pass:
        return "the reply has line errors"
    return None


def lcb_check(
    identifier: LanguageIdentifier,
    text: str | bytes,
    expected: str,
    words: frozenset[str] | None,
    *,
    index: int = 0,
    min_line_tokens: int = MIN_TOKENS,
    strip_role_markers: bool = False,
) -> LanguageCheck:
    """One reply checked the benchmark's way (module doc); in-process, no service needed.

    `expected` is any code the loaded model has a label for (ISO 639-1, ISO 639-3, `xxx_Scrp`); an
    unknown one raises InvalidArgument naming `items[index].expected_language`, a text that is not
    UTF-8 or is too long one naming `items[index].text`.
    """
    language = identifier.expected_code(expected, f"items[{index}].expected_language")
    field = f"items[{index}].text"
    text = identifier.text(text, field)
    if strip_role_markers:
        text = strip_markers(text)
    cleaned = clean(text)
    kept: list[tuple[str, list[str]]] = []
    for line in cleaned.split("\n"):
        tokens = tokenize(line, language)
        if len(tokens) >= min_line_tokens:
            kept.append((line, tokens))
    verdicts = tuple(_verdict(identifier, line, language, field) for line, _ in kept)
    passed = sum(verdict.passed for verdict in verdicts)
    line_pass = passed == len(verdicts) if verdicts else None
    note = _word_note(language, words, line_pass)
    word_pass = None
    if note is None:
        word_pass = not any(token.strip() in words for _, tokens in kept for token in tokens)  # type: ignore[operator]
    whole = prepare(cleaned)
    detected = identifier.identify_text(whole, field) if whole.strip() else None
    return LanguageCheck(
        index=index,
        line_pass_rate=passed / len(verdicts) if verdicts else 0.0,
        lines_checked=len(verdicts),
        lines_passed=passed,
        detected=detected,
        passed=line_pass is True,
        metric="lcb",
        line_pass=line_pass,
        word_pass=word_pass,
        lines=verdicts,
        word_note=note,
    )


def _verdict(identifier: LanguageIdentifier, line: str, expected: str, field: str) -> LineVerdict:
    top = identifier.top_label(line, field)
    if top is None:  # no word fastText knows: no label, a wrong line
        return new_line_verdict(line, "", "", 0.0, False)
    probability, label = top
    language = identifier.label_info[label][0]
    passed = language == expected and probability > THRESHOLD
    # fastText's probabilities are exp(log(p + 1e-5)), a hair over 1 for a certain prediction.
    return new_line_verdict(line, language, label, min(probability, 1.0), passed)


def score(checks: Iterable[LanguageCheck], language: str) -> dict[str, float]:
    """The benchmark's `compute_metrics` over one (source, language) set of checked replies:
    `acc` (mean share of good lines), `lpr`, and `wpr` for ar hi ja ko ru zh. Skipped replies (no kept
    line) and failed items count in none of them."""
    checked = [c for c in checks if c.error is None and c.line_pass is not None]
    failing = sum(1 for c in checked if not c.line_pass)
    metrics = {
        "acc": sum(c.line_pass_rate for c in checked) / len(checked) if checked else 1.0,
        "lpr": 1 - failing / max(1, len(checked)),
    }
    # Without a word list `word_pass` is None: then WPR is left out rather than reported as perfect.
    if language in WPR_LANGUAGES and all(c.word_pass is not None for c in checked if c.line_pass):
        with_words = sum(1 for c in checked if c.line_pass and c.word_pass is False)
        metrics["wpr"] = 1 - with_words / max(1, len(checked) - failing)
    return metrics


def average(per_set: Sequence[dict[str, float]]) -> dict[str, float]:
    """The benchmark's average of metric dicts (a metric missing from some sets averages over the rest):
    per language over its sources, then overall over the per-language averages."""
    out: dict[str, float] = {}
    for key in ("acc", "lpr", "wpr"):
        values = [m[key] for m in per_set if m.get(key) is not None]
        if values:
            out[key] = sum(values) / len(values)
    return out


def score_all(sets: Mapping[tuple[str, str], Iterable[LanguageCheck]]) -> dict[tuple[str, str], dict[str, float]]:
    """The benchmark's `compute_all_metrics`: `score` per (source, language), then averages per source
    (`(source, "all")`), per language (`("all", language)`) and overall (`("all", "all")`, the mean of the
    per-language averages)."""
    out = {(source, language): score(checks, language) for (source, language), checks in sets.items()}
    by_source: dict[str, list[dict[str, float]]] = {}
    by_language: dict[str, list[dict[str, float]]] = {}
    for (source, language), metrics in list(out.items()):
        by_source.setdefault(source, []).append(metrics)
        by_language.setdefault(language, []).append(metrics)
    out.update({(source, "all"): average(metrics) for source, metrics in by_source.items()})
    per_language = {("all", language): average(metrics) for language, metrics in by_language.items()}
    out.update(per_language)
    out[("all", "all")] = average(list(per_language.values()))
    return out
