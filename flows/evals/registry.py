"""Evaluation tasks and metrics registered by name, in the manner of lm-evaluation-harness' task registry.

`TASKS.get("xquad")` returns the task's `TaskSpec`; `METRICS.get("em")` its metric. The first lookup
loads, in this order: the built-in metrics (`metrics.yaml`) and tasks (`tasks/*.yaml`); the directories
in `POLYGLOT_TASK_PATH` (os.pathsep-separated); the packages of the `polyglot.tasks` entry points. A
study's `evaluation.include_paths` are loaded when its config is validated (`load_dir`). A task or metric
name registered twice raises.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import threading
from pathlib import Path
from types import ModuleType

import yaml

from flows.evals.spec import MetricSpec, TaskFile, TaskSpec
from services.common.registry import Registry

ENV_PATH = "POLYGLOT_TASK_PATH"
ENTRY_POINT_GROUP = "polyglot.tasks"
_HERE = Path(__file__).parent


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class _Loaded(Registry):
    """A registry that loads the built-in and plugin files on first use."""

    def _ensure(self) -> None:
        _load_defaults()

    def get(self, name: str):
        self._ensure()
        return super().get(name)

    def names(self) -> list[str]:
        self._ensure()
        return super().names()

    def __contains__(self, name: str) -> bool:
        self._ensure()
        return super().__contains__(name)


class TaskRegistry(_Loaded):
    def names(self) -> list[str]:
        """In report order: the tasks' `order`, then name."""
        return sorted(super().names(), key=self.order_of)

    def order_of(self, name: str) -> tuple[int, str]:
        spec = self.get(name)
        return (spec.order, spec.name)


METRICS: Registry[MetricSpec] = _Loaded("metric", base=MetricSpec)
TASKS = TaskRegistry("evaluation task", base=TaskSpec, field="evaluation.tasks")

_lock = threading.RLock()
_loaded: set[Path] = set()
_defaults_loaded = False


def _read_yaml(path: Path) -> object:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _import_hook(reference: str, task: str, directory: Path) -> ModuleType:
    if not reference.endswith(".py"):
        return importlib.import_module(reference)
    path = (directory / reference).resolve()
    module_name = f"polyglot_task_{task.replace('-', '_')}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"task {task!r}: cannot import hook {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # before exec: pickle and dataclasses look modules up by name
    module_spec.loader.exec_module(module)
    return module


def register_metric(metric: MetricSpec) -> MetricSpec:
    return METRICS.register(metric.name)(metric)


def load_metrics(path: Path) -> None:
    for name, fields in (_read_yaml(path) or {}).items():
        register_metric(MetricSpec(name=name, **fields))


def load_task(path: str | Path) -> TaskSpec | None:
    """Register the task a YAML file declares (and the metrics it declares); None if already loaded."""
    path = Path(path).resolve()
    with _lock:
        if path in _loaded:
            return None
        _loaded.add(path)
        try:
            data = TaskFile.model_validate(_read_yaml(path))
        except ValueError as exc:
            raise ValueError(f"{path}: not a task file: {exc}") from None
        for metric in data.metrics:
            if isinstance(metric, MetricSpec):
                register_metric(metric)
        spec = TaskSpec.build(data, _import_hook(data.hook, data.name, path.parent))
        unknown = [m for m in spec.metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"{path}: unknown metrics {unknown}; declare them in the task file")
        return TASKS.register(spec.name)(spec)


def load_dir(directory: str | Path) -> list[TaskSpec]:
    """Every `*.yaml` task file in a directory (a plugin path), in name order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"task directory {directory} does not exist")
    with _lock:
        _load_defaults()
        return [spec for path in sorted(directory.glob("*.yaml")) if (spec := load_task(path)) is not None]


def _load_defaults() -> None:
    global _defaults_loaded
    with _lock:  # re-entrant: loading a task looks its metrics up, which comes back here
        if _defaults_loaded:
            return
        _defaults_loaded = True
        load_metrics(_HERE / "metrics.yaml")
        for path in sorted((_HERE / "tasks").glob("*.yaml")):
            load_task(path)
        for entry in filter(None, os.environ.get(ENV_PATH, "").split(os.pathsep)):
            load_dir(entry)
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            load_dir(Path(entry_point.load().__file__).parent)
