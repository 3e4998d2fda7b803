"""Evaluation tasks: each one a YAML declaration (flows/evals/tasks/) plus a hook module, registered by name.

from flows.evals import TASKS
task = TASKS.get("xquad")
items = task.build_items(study.evaluation.tasks["xquad"], "de", seed=42)
task.score(items[0], generated_text)      # {"em": 1.0, "f1": 1.0}
"""

from flows.evals.items import EvalItem, dumps_items, loads_items
from flows.evals.registry import METRICS, TASKS
from flows.evals.spec import MetricSpec, TaskOptions, TaskSpec

__all__ = ["METRICS", "TASKS", "EvalItem", "MetricSpec", "TaskOptions", "TaskSpec", "dumps_items", "loads_items"]
