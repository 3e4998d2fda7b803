"""The config's documentation and identity: its JSON schema, a field reference, and a stable hash."""

from __future__ import annotations

import hashlib
import json
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_jsonable_python

from services.common.config.schema import StudyConfig
from services.common.config.types import Section


def dump_schema() -> dict[str, Any]:
    """The study config's JSON schema (every field with type, default and description)."""
    return StudyConfig.model_json_schema()


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


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Config sections inside an annotation; leaf models such as SamplingParams are shown as values."""
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        return " | ".join(_type_name(arg) for arg in args)
    if origin is typing.Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(arg) for arg in args)}]"
    if annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def schema_markdown(model: type[BaseModel] = StudyConfig, prefix: str = "") -> str:
    """A Markdown table of every field path with its type, default and description."""
    rows = ["| field | type | default | description |", "|---|---|---|---|"] if not prefix else []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if info.default is not PydanticUndefined:
            default = json.dumps(to_jsonable_python(info.default))
        elif info.default_factory is not None:
            default = (
                "(see below)" if _models_in(info.annotation) else json.dumps(to_jsonable_python(info.default_factory()))
            )
        else:
            default = "required"
        description = (info.description or "").replace("|", "\\|")
        type_name = _type_name(info.annotation).replace("|", "\\|")
        rows.append(f"| `{path}` | `{type_name}` | `{default}` | {description} |")
        for sub in _models_in(info.annotation):
            rows.append(schema_markdown(sub, f"{path}{'[]' if typing.get_origin(info.annotation) is list else ''}."))
    return "\n".join(rows)
