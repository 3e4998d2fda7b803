"""The study config's documentation: its JSON schema and a field reference (hashing: services.common.config)."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_jsonable_python

from flows.config.evaluation import EvaluationConfig
from flows.config.schema import StudyConfig
from flows.evals import TASKS
from services.common.config.types import Section


def _task_options() -> dict[str, type[BaseModel]]:
    """`evaluation.tasks` is a mapping checked against the task registry: its entries are these models."""
    return {name: TASKS.get(name).options_model for name in TASKS.names()}


def dump_schema() -> dict[str, Any]:
    """The study config's JSON schema (every field with type, default and description)."""
    schema = StudyConfig.model_json_schema()
    tasks = schema["$defs"]["EvaluationConfig"]["properties"]["tasks"]
    tasks["properties"] = {}
    for name, model in _task_options().items():
        options = model.model_json_schema(ref_template="#/$defs/{model}")
        schema["$defs"].update(options.pop("$defs", {}))
        tasks["properties"][name] = options
    return schema


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
        if model is EvaluationConfig and name == "tasks":
            for task, options in _task_options().items():
                rows.append(schema_markdown(options, f"{path}.{task}."))
    return "\n".join(rows)
