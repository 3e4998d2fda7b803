"""Evaluation tasks: item building per language, prompts, and scoring.

from flows.evals import TASKS
task = TASKS.get("xquad")
items = task.build_items(study.evaluation.tasks.xquad, "de", seed=42)
task.score(items[0], generated_text)      # {"em": 1.0, "f1": 1.0}
"""

from flows.evals.items import EvalItem, dumps_items, loads_items
from flows.evals.registry import TASKS, EvalTask

__all__ = ["TASKS", "EvalItem", "EvalTask", "dumps_items", "loads_items"]
