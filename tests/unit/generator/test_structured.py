"""Structured-output constraints: what the core accepts, and the field a refusal names."""

from __future__ import annotations

import re

import pytest

from services.common.errors import InvalidArgument
from services.generator.structured import JsonSchema, Regex, character_parser, regex_expansion


@pytest.mark.parametrize(
    "structured",
    [
        JsonSchema({"type": "object", "properties": {"type": {"type": "string"}, "n": {"enum": [1, 2]}}}),
        JsonSchema('{"type": ["string", "null"]}'),
        Regex(r"(yes|no), [0-9]{2,4}"),
    ],
)
def test_good_constraints_have_a_parser(structured):
    assert character_parser(structured) is not None


@pytest.mark.parametrize(
    ("structured", "field", "message"),
    [
        (JsonSchema("{not json"), "structured.json_schema", "not JSON"),
        (JsonSchema("[1]"), "structured.json_schema", "JSON object"),
        (JsonSchema({"anyOf": [{"type": "strin"}]}), "structured.json_schema", "anyOf[0].type"),
        (Regex(""), "structured.regex", "empty"),
        (Regex("(unclosed"), "structured.regex", "unsupported"),
    ],
)
def test_bad_constraints_name_the_field(structured, field, message):
    with pytest.raises(InvalidArgument, match=re.escape(message)) as err:
        character_parser(structured)
    assert err.value.field == field


def test_a_schema_given_as_dict_or_text_is_one_constraint():
    assert JsonSchema({"type": "string"}).text == JsonSchema('{"type": "string"}').text
    assert hash(JsonSchema({"type": "string"})) == hash(JsonSchema('{"type": "string"}'))


@pytest.mark.parametrize(
    ("pattern", "atoms"),
    [("[A-E]", 1), ("yes|no", 5), (r"\d{1,3}(\.\d+)?", 5), ("(ab)*c+", 3), ("x{1,100000}", 100_000),
     ("(x{1,1000}){1,1000}", 1_000_000)],  # fmt: skip
)
def test_a_regex_is_measured_with_its_bounded_repeats_written_out(pattern, atoms):
    assert regex_expansion(pattern) == atoms


@pytest.mark.parametrize(("pattern", "why"), [("x{1,100000}", "100,000 atoms"), ("x" * 20_000, "20000 characters")])
def test_a_regex_that_would_compile_into_a_huge_automaton_is_refused_before_compiling(pattern, why):
    """Found by the fuzzer: such a pattern used to hold a generator thread for minutes (no deadline stops it)."""
    with pytest.raises(InvalidArgument, match=why) as refused:
        character_parser(Regex(pattern))
    assert refused.value.field == "structured.regex"
