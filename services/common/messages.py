"""Dataclass ↔ protobuf message by field name: where a domain record and its message share field names,
the mapping is the names themselves, so a field added to both travels without a hand-written line.

Fields whose types differ (enums, nested messages, statuses) are passed explicitly and win.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

R = TypeVar("R")


def to_message(message_class: Any, record: Any, **fields: Any) -> Any:
    """A `message_class` from the dataclass `record`'s fields that the message also has, plus `fields`."""
    known = message_class.DESCRIPTOR.fields_by_name
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name in known}
    return message_class(**(values | fields))


def from_message(record_class: type[R], message: Any, **fields: Any) -> R:
    """A `record_class` from the message's fields of the same names, plus `fields` (repeated → list)."""
    known = message.DESCRIPTOR.fields_by_name
    values = {}
    for f in dataclasses.fields(record_class):  # type: ignore[arg-type]
        if f.name in known and f.name not in fields:
            value = getattr(message, f.name)
            values[f.name] = list(value) if hasattr(value, "extend") else value
    return record_class(**values, **fields)
