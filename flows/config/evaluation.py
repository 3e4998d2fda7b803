"""The `evaluation` section: which registered tasks to run, each with its options.

`tasks` maps a task name to its options, validated by that task's options model (flows/evals/spec.py):
a task left out is not run; a task named with no settings (`chat:`, which YAML reads as null) runs with its
defaults. To skip a task without editing the file, `--set evaluation.tasks.chat=null` or `--tasks` (the
loader drops the entry: an override means what it says). Plugin tasks are loaded from `include_paths`
first, so their names and options are checked like the built-ins'.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, create_model, field_validator

from flows.evals.registry import TASKS, load_dir
from flows.evals.spec import TaskOptions
from services.common.config.types import LocalPath, Section
from services.common.presets import DATA_SEED


def _bare_name_runs_defaults(value: object) -> object:
    # `xnli:` with nothing under it parses as null; the user meant "run it", not "skip it".
    return {} if value is None else value


def _unknown(name: str):
    def fail(value: object) -> object:
        raise ValueError(f"unknown evaluation task {name!r} (known: {', '.join(TASKS.names())})")

    return AfterValidator(fail)


def _tasks_model(names: tuple[str, ...]) -> type[Section]:
    return _model_of(tuple((name, name in TASKS) for name in names))


@functools.cache
def _model_of(names: tuple[tuple[str, bool], ...]) -> type[Section]:
    """A section with one field per configured name, so each error is located at `tasks.<name>...`."""
    fields: dict[str, Any] = {}
    for index, (name, known) in enumerate(names):
        kind = TASKS.get(name).options_model if known else Annotated[Any, _unknown(name)]
        fields[f"task_{index}"] = (Annotated[kind, BeforeValidator(_bare_name_runs_defaults)], Field(alias=name))
    return create_model("Tasks", __base__=Section, **fields)


class Tasks(dict[str, TaskOptions]):
    """The configured tasks by name, in report order."""


class EvaluationConfig(Section):
    include_paths: list[LocalPath] = Field(
        [],
        description="Directories of plugin tasks (task YAML + hook .py), relative to the study file; loaded "
        "before `tasks` is checked, as are those in POLYGLOT_TASK_PATH and the `polyglot.tasks` entry points.",
    )
    tasks: dict[str, Any] = Field(
        description="Tasks to run, at least one: registered name (chat, xquad, xcsqa, xnli, plugins) → its "
        "options; `name:` alone runs it with the defaults. `--set evaluation.tasks.<name>=null` skips it."
    )
    sample_seed: int = Field(DATA_SEED, ge=0, description="Seed that draws each task's item sample.")
    max_error_share: float = Field(
        0.01,
        ge=0,
        le=1,
        description="The study fails (exit 1, results kept) when a task's share of items that ended in error "
        "(a failed judge call or generation; item × seed over the whole study) is above this.",
    )

    @field_validator("include_paths")
    @classmethod
    def _load_plugins(cls, paths: list[Path]) -> list[Path]:
        for directory in paths:
            load_dir(directory)
        return paths

    @field_validator("tasks")
    @classmethod
    def _registered(cls, tasks: dict[str, Any], info: ValidationInfo) -> Tasks:
        if not tasks:
            raise ValueError(f"no evaluation task is configured: set at least one of {', '.join(TASKS.names())}")
        names = tuple(tasks)
        checked = _tasks_model(names).model_validate(tasks, context=info.context)
        options = {name: getattr(checked, f"task_{index}") for index, name in enumerate(names)}
        # Report order, whatever order the file lists them in.
        return Tasks((name, options[name]) for name in sorted(options, key=TASKS.order_of))
