"""Structured output: a JSON Schema or a regular expression that every completion of a request must match.

Both backends enforce it with one engine, lm-format-enforcer: `hf` through `backends/hf_structured.py`, and
`vllm` through its own `lm-format-enforcer` guided-decoding backend. The rules the two share live here:
the constraint's domain values, their validation (errors name `structured.<field>`), and the whitespace
bound that keeps a schema's token count finite.

No grpc and no torch imports here; lm-format-enforcer is imported only where a constraint is checked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from services.common.errors import InvalidArgument

# A random or weak model pads JSON with whitespace wherever the grammar allows it; with at most this many
# in a row, a schema whose strings are bounded has a bounded token count (lm-format-enforcer's own default
# is 12). The vLLM backend passes the same bound to vLLM's copy of the library.
MAX_CONSECUTIVE_WHITESPACE = 2


@dataclass(frozen=True)
class JsonSchema:
    """The completion is one JSON value valid under `schema` (a dict, or its JSON text)."""

    schema: Any

    @property
    def text(self) -> str:
        return self.schema if isinstance(self.schema, str) else json.dumps(self.schema, ensure_ascii=False)

    def __hash__(self) -> int:
        return hash(self.text)


@dataclass(frozen=True)
class Regex:
    """The whole completion matches `pattern` (the syntax lm-format-enforcer's `interegular` parses)."""

    pattern: str


Structured = JsonSchema | Regex
# The parser compiles a pattern into an automaton whose size grows with the pattern's expansion: `x{1,100000}`
# (11 characters) is 100,000 states, minutes of CPU and gigabytes that no deadline stops. Patterns are bounded
# before they are compiled: their length, and their size with every bounded repeat written out.
MAX_REGEX_CHARS = 2000
MAX_REGEX_EXPANSION = 10_000
_JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}


def _unknown_type(schema: Any, path: str = "") -> str | None:
    """Where `schema` names a type JSON Schema does not have; the library finds out only when a model
    reaches that part of the output."""
    if isinstance(schema, list):
        return next((p for i, item in enumerate(schema) if (p := _unknown_type(item, f"{path}[{i}]"))), None)
    if not isinstance(schema, dict):
        return None
    types = schema.get("type")
    names = [types] if isinstance(types, str) else types if isinstance(types, list) else []
    if any(not isinstance(name, str) or name not in _JSON_TYPES for name in names):
        return f"{path or '(root)'}.type: {types!r}"
    return next((p for key, value in schema.items() if (p := _unknown_type(value, f"{path}.{key}".lstrip(".")))), None)


def regex_expansion(pattern: str) -> int:
    """How many atoms `pattern` has with every bounded repeat written out (`a{2,5}` is 5, `a*` and `a+` count
    their body once, as a loop does in an automaton); the length for a pattern Python's parser refuses (the
    library reports its own errors)."""
    import re._constants as c
    import re._parser as parser  # the standard library's own regex parser: the pattern's structure

    def size(sub) -> int:
        total = 0
        for op, av in sub:
            if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                low, high, body = av
                total += max(low if high == c.MAXREPEAT else high, 1) * size(body)
            elif op is c.BRANCH:
                total += sum(size(branch) for branch in av[1])
            elif op in (c.SUBPATTERN, c.ATOMIC_GROUP):
                total += size(av[-1])
            elif op in (c.ASSERT, c.ASSERT_NOT):
                total += size(av[1])
            else:
                total += 1
        return total

    try:
        return size(parser.parse(pattern))
    except (re.error, RecursionError, OverflowError):
        return len(pattern)


def _check_regex(pattern: str) -> None:
    if not pattern:
        raise InvalidArgument("empty regular expression", field="structured.regex")
    if len(pattern) > MAX_REGEX_CHARS:
        raise InvalidArgument(f"{len(pattern)} characters; at most {MAX_REGEX_CHARS}", field="structured.regex")
    if (expansion := regex_expansion(pattern)) > MAX_REGEX_EXPANSION:
        raise InvalidArgument(
            f"{expansion:,} atoms with its repeats written out; at most {MAX_REGEX_EXPANSION:,} (a bounded repeat "
            "such as x{1,100000} compiles into that many states: use * or + for long runs)",
            field="structured.regex",
        )


def character_parser(structured: Structured):
    """lm-format-enforcer's parser for the constraint; InvalidArgument naming the field if it has none."""
    from lmformatenforcer import JsonSchemaParser, RegexParser

    if isinstance(structured, Regex):
        _check_regex(structured.pattern)
        try:
            return RegexParser(structured.pattern)
        except Exception as exc:  # interegular raises its own parse errors, and some of Python's
            raise InvalidArgument(f"unsupported regular expression: {exc}", field="structured.regex") from None
    try:
        schema = json.loads(structured.text)
    except ValueError as exc:
        raise InvalidArgument(f"not JSON: {exc}", field="structured.json_schema") from None
    if not isinstance(schema, dict):
        raise InvalidArgument("a JSON Schema must be a JSON object", field="structured.json_schema")
    if where := _unknown_type(schema):
        raise InvalidArgument(f"unknown type at {where}", field="structured.json_schema")
    try:
        return JsonSchemaParser(schema)
    except Exception as exc:  # pydantic's ValidationError, or the library's own refusals
        raise InvalidArgument(f"unsupported JSON Schema: {exc}", field="structured.json_schema") from None
