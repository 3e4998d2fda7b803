"""The per-item result record every evaluation shard writes, and jsonl helpers to store and read it.

One record = one evaluation item of one model (base model × mix) on one task, variant, language and
seed, with that item's metrics and its outcome. The aggregation (`flows.aggregate`) needs nothing else:
the paper's numbers are means over these records pooled across seeds, with bootstrap intervals over
`item_id`; the outcomes say how many items each mean leaves out and why.

The task, its variants, the metrics a record may carry and their ranges come from the task registry
(`flows/evals/tasks/*.yaml`, `flows/evals/metrics.yaml`).
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.evals import METRICS, TASKS
from flows.keys import SAMPLES_SUFFIX
from services.common import languages
from services.common.errors import InvalidArgument
from services.common.store.base import write_file_atomically

__all__ = [
    "ItemResult",
    "Outcome",
    "load_results",
    "read_jsonl",
    "result_from_json",
    "results_from_jsonl",
    "results_to_jsonl",
    "write_jsonl",
]

_FIELDS = ("study", "base_model", "mix", "task", "variant", "language", "seed", "item_id", "metrics", "outcome")
_DEFAULTS = {"variant": "", "outcome": "ok"}  # fields older shards may lack


class Outcome(enum.StrEnum):
    """What happened to one item. Only the metrics an item has enter the means; the outcome says why the
    others are missing, so every item of a shard is accounted for."""

    OK = "ok"  # generated and graded (by its reference or the judge)
    LANGUAGE_MISMATCH = "language_mismatch"  # the judge's gate: a reply in another language scores 1
    UNPARSABLE = "unparsable"  # the judge gave no valid verdict: no helpfulness
    ERROR = "error"  # a service failed on the item (judge retries exhausted, a generation): none of its metrics
    REFUSED = "refused"  # a service refused the item as invalid (e.g. a prompt too long): no metric at all


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One item's metrics. Validated on construction; raises InvalidArgument naming the field."""

    study: str
    base_model: str
    mix: str
    task: str
    variant: str
    language: str
    seed: int
    item_id: str
    metrics: Mapping[str, float] = field(default_factory=dict, hash=False)
    outcome: Outcome = Outcome.OK

    def __post_init__(self) -> None:
        for name in ("study", "base_model", "mix", "item_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InvalidArgument(f"must be a non-empty string, got {value!r}", field=name)
        if not isinstance(self.task, str) or self.task not in TASKS:
            known = ", ".join(TASKS.names())
            raise InvalidArgument(f"unknown task {self.task!r}; expected one of {known}", field="task")
        task = TASKS.get(self.task)
        if self.variant not in task.variant_names():
            allowed = " or ".join(repr(v) for v in task.variant_names())
            raise InvalidArgument(f"{self.task} variant must be {allowed}, got {self.variant!r}", field="variant")
        languages.get(self.language)  # raises InvalidArgument(field="language")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidArgument(f"must be a non-negative integer, got {self.seed!r}", field="seed")
        try:
            object.__setattr__(self, "outcome", Outcome(self.outcome))
        except ValueError:
            known = ", ".join(Outcome)
            raise InvalidArgument(
                f"unknown outcome {self.outcome!r}; expected one of {known}", field="outcome"
            ) from None
        if not self.metrics and self.outcome in (Outcome.OK, Outcome.LANGUAGE_MISMATCH):
            raise InvalidArgument(f"a result with outcome {self.outcome} needs at least one metric", field="metrics")
        allowed = task.metric_names()
        clean: dict[str, float] = {}
        for name, value in self.metrics.items():
            if name not in allowed:
                raise InvalidArgument(
                    f"{self.task} has no metric {name!r}; expected {', '.join(allowed)}", field=f"metrics.{name}"
                )
            number = float(value)
            low, high = METRICS.get(name).range
            if not (math.isfinite(number) and low <= number <= high):
                raise InvalidArgument(f"must be in [{low:g}, {high:g}], got {value!r}", field=f"metrics.{name}")
            clean[name] = number
        # A private copy in task order, so later changes to the caller's dict cannot reach the record.
        # (A plain dict, not a MappingProxyType: records must pickle to cross Prefect task boundaries.)
        object.__setattr__(self, "metrics", {name: clean[name] for name in allowed if name in clean})

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def key(self) -> tuple[str, str, str, str, str, int, str]:
        """What identifies the item's result: two records with the same key describe the same evaluation.

        `study` is provenance, not identity: studies that share a cached shard share its records.
        """
        return (
            self.base_model,
            self.mix,
            self.task,
            self.variant,
            self.language,
            self.seed,
            self.item_id,
        )

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _FIELDS}
        return data | {"metrics": dict(self.metrics), "outcome": self.outcome.value}


def result_from_json(data: Mapping[str, Any]) -> ItemResult:
    unknown = set(data) - set(_FIELDS)
    if unknown:
        raise InvalidArgument(f"unknown result fields {sorted(unknown)}", field=sorted(unknown)[0])
    missing = [name for name in _FIELDS if name not in data and name not in _DEFAULTS]
    if missing:
        raise InvalidArgument(f"missing result fields {missing}", field=missing[0])
    return ItemResult(**{**_DEFAULTS, **data})


def results_to_jsonl(records: Iterable[ItemResult]) -> bytes:
    """UTF-8 jsonl, one record a line, keys in a fixed order (byte-stable for equal records)."""
    lines = (json.dumps(r.to_json(), ensure_ascii=False, allow_nan=False, separators=(",", ":")) for r in records)
    return "".join(line + "\n" for line in lines).encode("utf-8")


def results_from_jsonl(data: bytes | str, *, source: str = "<jsonl>") -> list[ItemResult]:
    """Parse jsonl text; errors name the source and line."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(result_from_json(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"{source}:{number}: invalid JSON: {exc.msg}") from None
        except InvalidArgument as exc:
            raise InvalidArgument(f"{source}:{number}: {exc.message}", field=exc.field) from None
        except TypeError as exc:
            raise InvalidArgument(f"{source}:{number}: {exc}") from None
    return records


def write_jsonl(path: str | Path, records: Iterable[ItemResult]) -> Path:
    """Write a shard atomically: readers see the old file or the whole new one, never a partial shard."""
    path = Path(path)
    write_file_atomically(path, [results_to_jsonl(records)])
    return path


def read_jsonl(path: str | Path) -> list[ItemResult]:
    path = Path(path)
    return results_from_jsonl(path.read_bytes(), source=str(path))


def load_results(sources: Iterable[str | Path | ItemResult] | str | Path) -> list[ItemResult]:
    """Records from shard paths (files, or directories searched for `*.jsonl`, sample logs left out)
    and/or records.

    Loading the same shard twice is harmless: identical records are kept once. Two records with the
    same key but different metrics or outcomes mean two runs disagree, which would silently bias every
    mean, so that raises InvalidArgument.
    """
    if isinstance(sources, (str, Path)):
        sources = [sources]
    seen: dict[tuple, ItemResult] = {}
    for source in sources:
        if isinstance(source, ItemResult):
            batch = [source]
        else:
            path = Path(source)
            files = (
                sorted(p for p in path.rglob("*.jsonl") if not p.name.endswith(SAMPLES_SUFFIX))
                if path.is_dir()
                else [path]
            )
            batch = [record for file in files for record in read_jsonl(file)]
        for record in batch:
            previous = seen.setdefault(record.key, record)
            if previous is not record and previous.to_json() | {"study": ""} != record.to_json() | {"study": ""}:
                raise InvalidArgument(
                    f"conflicting results for {record.key}: {dict(previous.metrics)} ({previous.outcome}) vs "
                    f"{dict(record.metrics)} ({record.outcome})",
                    field="metrics",
                )
    return list(seen.values())
