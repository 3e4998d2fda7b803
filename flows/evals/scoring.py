"""Scoring the paper's structured tasks: XQuAD exact match and token F1, X-CSQA letters, XNLI argmax.

XQuAD answers are generated after a forced prefix, so models add quotes, repeat the question, or go on
explaining. Polyglot post-processes each answer before exact match; the steps are Polyglot's choice, not
the paper's (its generation script strips the output and cuts it at the first stop string; no claim is
made here about what its scoring did beyond that):

1. drop the question if the model repeats it;
2. keep the text up to the first line break, and at most 50 characters;
3. strip quotation marks in all their language forms (« » „ “ ” ‘ ’ ‚ ‹ › 「 」 『 』 ＂ and friends);
   an answer that opens with a quoted span is that span ("„Berlin“, weil ..." → "Berlin");
4. normalise as SQuAD / MLQA do: lower case, no punctuation, no articles, single spaces.

Token F1 is SQuAD's over the normalised tokens: whitespace words, or characters for scripts written
without spaces (zh, th; per `tokens: chars` in templates/xquad.yaml), as MLQA's mixed segmentation does.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from flows.evals import language_data

MAX_ANSWER_CHARS = 50

# Opening quote → closing quotes that may end it (languages pair them differently: „…“ de, „…” pl, »…« de/da).
QUOTE_PAIRS: dict[str, str] = {
    '"': '"',
    "'": "'",
    "«": "»",
    "»": "«»",
    "„": "“”",
    "‚": "‘’",
    "“": "”“",
    "”": "”",
    "‘": "’‘",
    "’": "’",
    "‹": "›",
    "›": "‹›",
    "「": "」",
    "『": "』",
    "＂": "＂",
    "＇": "＇",
    "〝": "〞〟",
    "﹁": "﹂",
    "﹃": "﹄",
}
QUOTE_CHARS = frozenset("".join(QUOTE_PAIRS) + "".join(QUOTE_PAIRS.values()))
_EDGE_JUNK = frozenset(" \t:：-–—,，、.。")
_PUNCT = frozenset(string.punctuation)


def _is_punct(char: str) -> bool:
    return char in _PUNCT or unicodedata.category(char).startswith("P")


# Scripts without spaces between words: every character of these is its own token.
_CHAR_SCRIPT = re.compile(
    r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]"
)


def drop_repeated_question(text: str, question: str) -> str:
    """Remove the question where the model repeats it (anywhere; case-insensitive; with or without `?`)."""
    if not question.strip():
        return text
    for candidate in (question.strip(), re.sub(r"[?？;]+$", "", question.strip()).strip()):
        if not candidate:
            continue
        match = re.search(re.escape(candidate), text, flags=re.IGNORECASE)
        if match:
            # a question mark the model put after its repetition goes too
            rest = re.sub(r"^[\s?？]+", "", text[match.end() :])
            return (text[: match.start()] + " " + rest).strip()
    return text


def strip_quotes(text: str) -> str:
    """The span inside a leading quote pair, else the text without quote marks at its ends."""
    text = text.strip()
    while text and text[0] in QUOTE_PAIRS:
        closers = QUOTE_PAIRS[text[0]]
        end = next((i for i, c in enumerate(text[1:], start=1) if c in closers), -1)
        if end < 0:
            break
        span = text[1:end].strip()
        if span:
            return span
        # an empty pair, e.g. what is left of a quoted repeated question: look past it
        text = text[end + 1 :].lstrip("".join(_EDGE_JUNK))
    return text.strip("".join(QUOTE_CHARS) + " ")


def postprocess_answer(output: str, question: str = "", max_chars: int = MAX_ANSWER_CHARS) -> str:
    """The answer Polyglot scores: steps 1-3 of the module docstring (normalisation is separate)."""
    text = drop_repeated_question(output, question)
    text = text.lstrip("".join(_EDGE_JUNK) + "\n\r")
    text = text.split("\n", 1)[0].strip()[:max_chars]
    text = text.lstrip("".join(_EDGE_JUNK))
    return strip_quotes(text)


def normalise(text: str, language: str = "en") -> str:
    """SQuAD/MLQA normalisation: lower case, punctuation removed, the language's articles removed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(c for c in text if not _is_punct(c))
    articles = _language_entry(language).get("articles") or []
    if articles:
        text = re.sub(r"\b(?:" + "|".join(map(re.escape, articles)) + r")\b", " ", text)
    return " ".join(text.split())


def tokens(text: str, language: str = "en") -> list[str]:
    """Normalised tokens: whitespace words, with every character of no-space scripts split off."""
    norm = normalise(text, language)
    if _language_entry(language).get("tokens") != "chars":
        return norm.split()
    out: list[str] = []
    for word in norm.split():
        buffer = ""
        for char in word:
            if _CHAR_SCRIPT.match(char):
                if buffer:
                    out.append(buffer)
                    buffer = ""
                out.append(char)
            else:
                buffer += char
        if buffer:
            out.append(buffer)
    return out


def _language_entry(language: str) -> dict:
    return language_data.table("xquad").get(language, {})


def token_f1(prediction: Sequence[str], gold: Sequence[str]) -> float:
    common = Counter(prediction) & Counter(gold)
    same = sum(common.values())
    if not prediction or not gold:
        return float(prediction == gold)
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction), same / len(gold)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class QaScore:
    answer: str  # the post-processed answer that was scored
    exact_match: float  # 0 or 1
    f1: float  # 0..1


def score_xquad(output: str, answers: Sequence[str], *, question: str = "", language: str = "en") -> QaScore:
    """Exact match and token F1 of a generated answer against the gold answers (max over golds)."""
    answer = postprocess_answer(output, question)
    predicted = tokens(answer, language)
    golds = [tokens(gold, language) for gold in answers]
    em = max((float(predicted == gold) for gold in golds), default=0.0)
    f1 = max((token_f1(predicted, gold) for gold in golds), default=0.0)
    return QaScore(answer, em, f1)


LETTERS = "ABCDE"


def extract_letter(output: str, options: Sequence[str] = (), letters: str = LETTERS) -> str | None:
    """The option letter a model chose, or None.

    In order: a letter opening the answer (`B`, `(B)`, `B.`, `Ｂ`); a letter with answer punctuation
    anywhere (`答案是（C）`, `... is D.`); any letter standing alone; else the option whose text the
    answer contains first.
    """
    text = unicodedata.normalize("NFKC", output).strip()
    cls = f"[{letters}]"
    not_letter_before, not_letter_after = r"(?<![A-Za-z])", r"(?![A-Za-z])"
    patterns = (
        rf"^[\s:：\-*]*[(\[{{]?({cls}){not_letter_after}",
        rf"{not_letter_before}[(\[]({cls})[)\]]",
        rf"{not_letter_before}({cls})[.)：:、]",
        rf"{not_letter_before}({cls}){not_letter_after}",
    )
    for pattern in patterns:
        match = re.search(pattern, text)
        if match:
            return match.group(1)
    folded = text.casefold()
    hits = [(folded.find(opt.casefold()), letters[i]) for i, opt in enumerate(options[: len(letters)]) if opt.strip()]
    hits = [hit for hit in hits if hit[0] >= 0]
    return min(hits)[1] if hits else None


def argmax_choice(logprobs: Sequence[float]) -> int:
    """Index of the most likely choice (the first on ties), as lm-eval's `acc` picks for XNLI."""
    if not logprobs:
        raise ValueError("no choice log-likelihoods")
    return max(range(len(logprobs)), key=lambda i: (logprobs[i], -i))
