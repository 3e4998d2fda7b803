"""Per-language task data (templates, forced prefixes, XNLI words) from `flows/evals/templates/*.yaml`.

Tasks are not copied per language: one task module reads the language's entry from its YAML file, in the
manner of lm-evaluation-harness' per-language task files.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

from services.common.errors import InvalidArgument


@functools.cache
def table(name: str) -> dict[str, Any]:
    """The parsed `templates/<name>.yaml` (cached; treat as read-only)."""
    text = resources.files("flows.evals.templates").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    bad = [key for key in data if not isinstance(key, str)]
    if bad:  # YAML 1.1 turns a bare `no:` into False: catch that class of slip here
        raise ValueError(f"templates/{name}.yaml: non-string keys {bad}; quote them")
    return data


def entry(task: str, language: str) -> dict[str, Any]:
    """The language's entry for `task`; InvalidArgument naming the file when there is none."""
    data = table(task)
    if language not in data:
        raise InvalidArgument(
            f"{task} has no prompt data for language {language!r} (have: {', '.join(sorted(data))}); "
            f"add it to flows/evals/templates/{task}.yaml",
            field=f"evaluation.tasks.{task}.languages",
        )
    return data[language]


def languages(task: str) -> list[str]:
    return list(table(task))
