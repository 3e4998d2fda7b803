"""The evaluation tasks, registered by name: `TASKS.get("xquad")` returns the task object.

A task knows how to read its data, build the items of one language (`EvalItem`s: prompt, forced prefix,
gold answers), name the inputs that determine those items (for artifact keys), and score one output.
Modules are imported lazily, as lm-evaluation-harness resolves its registered tasks.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from flows.evals.items import EvalItem
from services.common.registry import Registry

TASKS: Registry[EvalTask] = Registry("eval task")


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class EvalTask(ABC):
    """One of the paper's evaluation tasks."""

    name: ClassVar[str]
    # generate: Generate(prompt + response_prefix) then `score(item, text)`;
    # loglikelihood: Score(prompt, choice) for each choice then `score(item, [logprob, ...])`.
    method: ClassVar[Literal["generate", "loglikelihood"]]
    # reference: scored here against gold answers; judge: graded by the judge service.
    graded_by: ClassVar[Literal["reference", "judge"]] = "reference"

    @abstractmethod
    def inputs(self, config: Any, language: str, translator_model: str = "") -> dict[str, str]:
        """What determines this language's items besides the config: input file hashes, template data,
        the translation model when one is needed. Artifact keys hash it; it must be cheap."""

    @abstractmethod
    def build_items(self, config: Any, language: str, *, seed: int, translator: Any = None) -> list[EvalItem]:
        """The items of one language, sampled with `seed` (the same items in every language)."""

    def score(self, item: EvalItem, output: Any) -> dict[str, float]:
        """Metrics of one output for one item (0..1)."""
        raise NotImplementedError(f"{self.name} is graded by the {self.graded_by}, not scored here")

    def metric_names(self) -> Sequence[str]:
        return ()


TASKS.register_lazy("chat", "flows.evals.chat:TASK")
TASKS.register_lazy("xquad", "flows.evals.xquad:TASK")
TASKS.register_lazy("xcsqa", "flows.evals.xcsqa:TASK")
TASKS.register_lazy("xnli", "flows.evals.xnli:TASK")
