"""Structured output through the real generator service on loopback: the tiny random Llama, constrained by
a JSON Schema or a regex, still answers in the required shape, and unconstrained rows are untouched."""

from __future__ import annotations

import json
import re

import pytest

from services.common.errors import InvalidArgument
from services.common.presets import SamplingParams
from services.generator.engine import GenRow, encode
from services.generator.structured import MAX_CONSECUTIVE_WHITESPACE, JsonSchema, Regex

PROMPT = "### Human: Rate the answer from 1 to 6. ### Assistant:"
REASONING_CHARS = 12
SCHEMA = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string", "maxLength": REASONING_CHARS},
        "score": {"type": "integer", "enum": [1, 2, 3, 4, 5, 6]},
    },
    "required": ["reasoning", "score"],
    "additionalProperties": False,
}
# Keys and punctuation, bounded whitespace at each place it may go, the score and EOS; at most 6 tokens per
# reasoning character (a \uXXXX escape). A random model must finish inside this, never cut by max_tokens.
BOUND = 26 + 12 * MAX_CONSECUTIVE_WHITESPACE + 14 + 6 * REASONING_CHARS


def test_a_random_model_under_a_schema_always_yields_valid_json(generator_client, generator_service):
    if generator_service.backend != "hf":
        pytest.skip("the token bound relies on the hf backend's rules (whole characters, EOS once closed)")
    wild = dict(temperature=3.0, top_k=-1, top_p=1.0)  # sample the whole vocabulary: the hardest case
    results = [
        *generator_client.generate_all([PROMPT] * 6, seed=1, max_tokens=BOUND, structured=JsonSchema(SCHEMA), **wild),
        *generator_client.generate_all([PROMPT], temperature=0.0, max_tokens=BOUND, structured=JsonSchema(SCHEMA)),
    ]
    for result in results:
        assert result.error is None and result.finish_reason == "stop", result
        verdict = json.loads(result.text)
        assert set(verdict) == {"reasoning", "score"} and verdict["score"] in range(1, 7), result.text
        # The library does not count whitespace right after the opening quote.
        assert len(verdict["reasoning"].lstrip()) <= REASONING_CHARS, result.text
        assert result.completion_tokens <= BOUND


def test_a_regex_constrains_the_whole_completion(generator_client):
    pattern = r"(yes|no), [0-9]{2,4}"
    results = generator_client.generate_all(
        ["Answer yes or no and a number:"] * 3, preset="chat", seed=7, max_tokens=24, structured=Regex(pattern)
    )
    for result in results:
        assert re.fullmatch(pattern, result.text.strip()), result.text


def test_unconstrained_rows_in_a_constrained_batch_are_unchanged(generator_client, generator_service):
    if generator_service.backend != "hf":
        pytest.skip("drives the hf engine's batch directly")
    engine = generator_service.generator.engine
    params = SamplingParams(temperature=0.8, top_p=0.9, top_k=50, max_tokens=12, seed=42)
    alone = generator_client.generate_all([PROMPT], params)[0].text
    ids = tuple(encode(engine.tokenizer, PROMPT))
    batches = engine.worker.batches_run
    free, constrained = engine.submit_generate(
        [GenRow(ids, params), GenRow(ids, params.with_overrides(max_tokens=BOUND), structured=JsonSchema(SCHEMA))]
    )
    assert free.result().text == alone
    json.loads(constrained.result().text)
    assert engine.worker.batches_run == batches + 1  # the two rows really shared one batch


@pytest.mark.parametrize(
    ("structured", "field"),
    [
        (JsonSchema("{not json"), "structured.json_schema"),
        (JsonSchema("[1, 2]"), "structured.json_schema"),
        (JsonSchema({"type": "object", "properties": {"x": {"type": "frobnicate"}}}), "structured.json_schema"),
        (Regex("(unclosed"), "structured.regex"),
    ],
)
def test_a_bad_constraint_is_invalid_argument_naming_the_field(generator_client, structured, field):
    with pytest.raises(InvalidArgument) as err:
        generator_client.generate_all(["Hi"], max_tokens=4, structured=structured)
    assert err.value.grpc_code.name == "INVALID_ARGUMENT"
    assert field in str(err.value)
