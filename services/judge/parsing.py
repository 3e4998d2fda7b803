"""Reading the judge's verdict out of its reply: strict about the score, lenient only about wrapping.

The rubric asks for one RFC 8259 JSON object `{"reasoning": str, "score": int}`. Chat models often wrap
it in a Markdown code fence or a sentence; the first JSON object in the reply that has a `score` is taken,
as it is. Nothing is inferred from prose: a reply without a valid object, or with a score outside 1..6,
is a `ReplyError`, which the grader answers with one repair request and then records as UNPARSABLE.

`parse_verdict_strict` reads a reply as the paper's judge script does: the whole reply is one JSON
document (`json.loads`, surrounding whitespace allowed), nothing unwrapped or searched for. What it cannot
read, the paper's script leaves without a score and its aggregation drops; here it is UNPARSABLE (kept
out of every mean) and, with a chat template's `"repair": false`, no repair request is made.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

MIN_SCORE, MAX_SCORE = 1, 6
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)


class ReplyError(ValueError):
    """The reply holds no usable verdict; the message says why (and goes into the repair request)."""


@dataclass(frozen=True)
class Verdict:
    score: int
    reasoning: str


def _no_constants(name: str):
    raise ValueError(f"{name} is not valid JSON (RFC 8259)")


def _loads(text: str):
    return json.loads(text, parse_constant=_no_constants)


def _first_object(text: str) -> dict | None:
    """The first JSON object in `text` that has a `score` key; None if there is none."""
    decoder = json.JSONDecoder(parse_constant=_no_constants)
    start = text.find("{")
    while start != -1:
        try:
            obj, _ = decoder.raw_decode(text, start)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and "score" in obj:
            return obj
        start = text.find("{", start + 1)
    return None


def _score(value) -> int:
    # JSON has one number type: 5 and 5.0 are the same number; "5" is a number in quotes. 4.5 is not a level.
    if isinstance(value, bool):
        raise ReplyError(f"score must be an integer from {MIN_SCORE} to {MAX_SCORE}, got {json.dumps(value)}")
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ReplyError(f"score must be an integer from {MIN_SCORE} to {MAX_SCORE}, got {json.dumps(value)}")
    if not MIN_SCORE <= value <= MAX_SCORE:
        raise ReplyError(f"score {value} is outside {MIN_SCORE}..{MAX_SCORE}")
    return value


def parse_verdict(reply: str) -> Verdict:
    """The verdict in `reply`, or ReplyError."""
    text = reply.strip()
    if not text:
        raise ReplyError("the reply is empty")
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        obj = _loads(text)
    except ValueError:
        obj = _first_object(text)
        if obj is None:
            raise ReplyError('the reply holds no JSON object with a "score"') from None
    if not isinstance(obj, dict):
        raise ReplyError(f"the reply is JSON but not an object ({type(obj).__name__})")
    if "score" not in obj:
        raise ReplyError('the JSON object has no "score"')
    reasoning = obj.get("reasoning", "")
    if not isinstance(reasoning, str):
        raise ReplyError('"reasoning" must be a string')
    return Verdict(_score(obj["score"]), reasoning)


def parse_verdict_strict(reply: str) -> Verdict:
    """The verdict of a reply that is exactly one JSON object with a score, or ReplyError."""
    try:
        obj = _loads(reply)
    except ValueError:
        raise ReplyError("the reply is not one JSON document") from None
    if not isinstance(obj, dict):
        raise ReplyError(f"the reply is JSON but not an object ({type(obj).__name__})")
    if "score" not in obj:
        raise ReplyError('the JSON object has no "score"')
    reasoning = obj.get("reasoning", "")
    return Verdict(_score(obj["score"]), reasoning if isinstance(reasoning, str) else json.dumps(reasoning))


PARSERS = {"lenient": parse_verdict, "strict": parse_verdict_strict}
