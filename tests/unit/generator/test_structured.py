"""Structured-output constraints: what the core accepts, and the field a refusal names."""

from __future__ import annotations

import re

import pytest

from services.common.errors import InvalidArgument
from services.generator.structured import JsonSchema, Regex, character_parser


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
