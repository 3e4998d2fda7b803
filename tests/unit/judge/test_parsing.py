"""The verdict parser: strict about the score (1..6, an integer), lenient only about wrapping."""

from __future__ import annotations

import pytest

from services.judge.parsing import ReplyError, parse_verdict


@pytest.mark.parametrize(
    ("reply", "score", "reasoning"),
    [
        ('{"reasoning": "clear and complete", "score": 6}', 6, "clear and complete"),
        ('```json\n{"reasoning": "fine", "score": 4}\n```', 4, "fine"),
        ('```\n{"score": 2, "reasoning": "vague"}\n```', 2, "vague"),
        ('Here is my verdict: {"reasoning": "ok", "score": 3} Hope this helps.', 3, "ok"),
        ('{"reasoning": "integral float", "score": 5.0}', 5, "integral float"),
        ('{"reasoning": "quoted", "score": "1"}', 1, "quoted"),
        ('{"score": 4}', 4, ""),
        ('{"reasoning": "a {brace} in text", "score": 2}', 2, "a {brace} in text"),
        ('{"note": "no score here"} then {"reasoning": "second", "score": 5}', 5, "second"),
    ],
)
def test_valid_replies(reply: str, score: int, reasoning: str):
    verdict = parse_verdict(reply)
    assert (verdict.score, verdict.reasoning) == (score, reasoning)


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("", "empty"),
        ("The answer deserves a 5.", "no JSON object"),
        ('{"reasoning": "cut off", "score": ', "no JSON object"),
        ('{"reasoning": "too high", "score": 7}', "outside 1..6"),
        ('{"reasoning": "too low", "score": 0}', "outside 1..6"),
        ('{"reasoning": "half", "score": 4.5}', "integer"),
        ('{"reasoning": "bool", "score": true}', "integer"),
        ('{"reasoning": "nan", "score": NaN}', "no JSON object"),
        ('{"reasoning": "words", "score": "five"}', "integer"),
        ('{"reasoning": "no score"}', 'has no "score"'),
        ("[5]", "not an object"),
        ('{"reasoning": 5, "score": 5}', "reasoning"),
    ],
)
def test_unusable_replies_raise_with_a_reason(reply: str, why: str):
    with pytest.raises(ReplyError, match=why):
        parse_verdict(reply)
