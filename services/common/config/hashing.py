"""Stable identity of config values: canonical JSON and its SHA-256 (artifact keys hash these)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic_core import to_jsonable_python


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 as is: equal values give byte-equal text."""
    return json.dumps(
        to_jsonable_python(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def config_hash(model_slice: Any) -> str:
    """Hex SHA-256 of `model_slice`'s canonical JSON: a pydantic model, or plain JSON-able data.

    Flows key artifacts by it, so it must not change between runs or machines for equal values.
    """
    return hashlib.sha256(canonical_json(model_slice).encode("utf-8")).hexdigest()
