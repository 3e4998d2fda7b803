"""From per-item results to the paper's numbers: pooled means, bootstrap intervals, paired tests.

For every (base model, mix, task, variant, language, metric) cell:
- the mean over items pooled across seeds, as the paper reports it (§3.3: "averaged over three seeds");
- a percentile confidence interval from a cluster bootstrap over items: an item is drawn with all of
  its seeds, because one item's seeds are not independent draws (same prompt, same gold answer);
- the per-seed spread: the mean of each seed, and their min, max and standard deviation;
- the cell's items by outcome (`flows.results.Outcome`): the mean is over the items that have the metric,
  and the counts say how many were left out and why (unparsable or failed judge grades, refused items).

For every mix against the reference (Mono) per language, a paired bootstrap test on the differences of
the same item and seed, again resampling items as clusters: the mean difference, its interval, a
two-sided p-value (the bootstrap distribution re-centred on zero), and a Holm-adjusted p-value within
each (base model, task, variant, metric) family, since a study runs dozens of such tests at once.

Randomness is seeded per cell from a hash of its key, so every number is reproducible and does not
depend on which other cells happen to be in the same table.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from flows.config import ReportConfig, parse_mix
from flows.evals import TASKS
from flows.results import ItemResult, Outcome
from services.common import languages
from services.common.errors import FailedPrecondition

__all__ = [
    "Aggregate",
    "CellOutcomes",
    "PairedTest",
    "SummaryRow",
    "aggregate",
    "cell_slug",
    "check_error_share",
    "cluster_bootstrap",
    "holm",
    "mix_sort_key",
    "outcome_counts",
    "paired_tests",
    "summarize",
]

REFERENCE_MIX = "mono"


@dataclass(frozen=True)
class SummaryRow:
    """One cell of a results table: a mean with its interval and its spread over seeds."""

    base_model: str
    mix: str
    task: str
    variant: str
    language: str
    metric: str
    mean: float
    ci_low: float
    ci_high: float
    confidence: float
    n_items: int
    n_seeds: int
    n_obs: int  # item × seed observations behind the mean
    seeds: list[int] = field(default_factory=list)
    seed_means: list[float] = field(default_factory=list)
    seed_min: float | None = None
    seed_max: float | None = None
    seed_std: float | None = None  # sample std (ddof 1) of the seed means; None with one seed
    # The cell's item × seed observations by outcome, all of them, with or without this metric.
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CellOutcomes:
    """Every item × seed of one cell by outcome, also for a cell where no item has a metric to show."""

    base_model: str
    mix: str
    task: str
    variant: str
    language: str
    counts: dict[str, int]


@dataclass(frozen=True)
class PairedTest:
    """`mix` minus `reference` on the same items and seeds, for one language and metric."""

    base_model: str
    task: str
    variant: str
    language: str
    metric: str
    mix: str
    reference: str
    mean_diff: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    p_holm: float
    n_items: int
    n_pairs: int


@dataclass(frozen=True)
class Aggregate:
    """Everything the report needs from the numbers, JSON-serialisable with `to_json`."""

    rows: list[SummaryRow]
    tests: list[PairedTest]
    confidence: float
    n_resamples: int
    seed: int
    reference: str = REFERENCE_MIX
    outcomes: list[CellOutcomes] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)  # the shards' result keys: where the samples are

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Aggregate:
        return cls(
            rows=[SummaryRow(**row) for row in data["rows"]],
            tests=[PairedTest(**test) for test in data["tests"]],
            outcomes=[CellOutcomes(**cell) for cell in data.get("outcomes", [])],
            **{
                f.name: data[f.name]
                for f in fields(cls)
                if f.name not in ("rows", "tests", "outcomes") and f.name in data
            },
        )


# --- ordering ----------------------------------------------------------------------------------------


def mix_sort_key(name: str) -> tuple:
    """Mono, Multi-2, Multi-2-MT, Multi-3, ..., full, leave-one-out:*, then names parse_mix rejects."""
    try:
        spec = parse_mix(name)
    except ValueError:
        return (9, 0, 0, name)
    rank = {"mono": 0, "multi": 1, "full": 2, "leave-one-out": 3}[spec.kind]
    return (rank, spec.size or 0, int(spec.machine_translated), spec.left_out or "")


def _language_key(code: str) -> tuple[int, int]:
    """Figure order (English, high, low, extremely low, other), the registry's order within a group."""
    lang = languages.get(code)
    return (lang.group.rank, languages.codes().index(lang.code))


def _task_key(task: str, variant: str, metric: str) -> tuple:
    return (TASKS.order_of(task), variant, TASKS.get(task).metric_names().index(metric))


# --- the bootstrap -----------------------------------------------------------------------------------


def _rng(seed: int, key: Iterable[Any]) -> np.random.Generator:
    """A generator seeded from the cell's identity: stable across runs, machines and table contents."""
    digest = zlib.crc32("\x1f".join(str(part) for part in key).encode("utf-8"))
    return np.random.default_rng([seed, digest])


def cluster_bootstrap(sums: np.ndarray, counts: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of a pooled mean whose observations are clustered by item.

    `sums[i]` and `counts[i]` are item i's total and number of observations (its seeds). Each replicate
    draws items with replacement and takes the ratio of their totals: a drawn item brings all its seeds.
    """
    n = len(sums)
    draws = rng.integers(0, n, size=(n_resamples, n))
    return sums[draws].sum(axis=1) / counts[draws].sum(axis=1)


def _interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone), in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


# --- grouping ----------------------------------------------------------------------------------------

Cell = tuple[str, str, str, str, str, str]  # base_model, mix, task, variant, language, metric
Group = tuple[str, str, str, str, str]  # a cell without its metric: the items behind every metric's mean
Observations = dict[str, dict[int, float]]  # item_id -> seed -> value


def outcome_counts(records: Iterable[ItemResult]) -> dict[Group, dict[str, int]]:
    """Each group's item × seed observations by outcome (non-zero counts, in the declared order)."""
    counts: dict[Group, Counter] = defaultdict(Counter)
    for r in records:
        counts[(r.base_model, r.mix, r.task, r.variant, r.language)][r.outcome] += 1
    return {group: {o.value: c[o] for o in Outcome if c[o]} for group, c in counts.items()}


def _cells(records: Iterable[ItemResult]) -> dict[Cell, Observations]:
    cells: dict[Cell, Observations] = defaultdict(lambda: defaultdict(dict))
    for record in records:
        for metric, value in record.metrics.items():
            cell = (record.base_model, record.mix, record.task, record.variant, record.language, metric)
            cells[cell][record.item_id][record.seed] = value
    return cells


def _group_key(group: Group) -> tuple:
    base_model, mix, task, variant, language = group
    return (base_model, TASKS.order_of(task), variant, _language_key(language), mix_sort_key(mix))


def _sorted_cells(cells: Iterable[Cell]) -> list[Cell]:
    def key(cell: Cell) -> tuple:
        base_model, mix, task, variant, language, metric = cell
        return (base_model, _task_key(task, variant, metric), _language_key(language), mix_sort_key(mix))

    return sorted(cells, key=key)


def _per_item(observations: Observations) -> tuple[np.ndarray, np.ndarray]:
    items = sorted(observations)
    sums = np.array([sum(observations[item].values()) for item in items], dtype=float)
    counts = np.array([len(observations[item]) for item in items], dtype=float)
    return sums, counts


# --- public API --------------------------------------------------------------------------------------


def summarize(
    records: Iterable[ItemResult], *, confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0
) -> list[SummaryRow]:
    """One SummaryRow per (base model, mix, task, variant, language, metric), in table order."""
    records = list(records)
    cells = _cells(records)
    outcomes = outcome_counts(records)
    rows = []
    for cell in _sorted_cells(cells):
        observations = cells[cell]
        sums, counts = _per_item(observations)
        mean = float(sums.sum() / counts.sum())
        if len(sums) > 1:
            low, high = _interval(cluster_bootstrap(sums, counts, n_resamples, _rng(seed, cell)), confidence)
        else:
            low = high = mean  # one item: no spread to resample
        by_seed: dict[int, list[float]] = defaultdict(list)
        for per_seed in observations.values():
            for s, value in per_seed.items():
                by_seed[s].append(value)
        seeds = sorted(by_seed)
        seed_means = [float(np.mean(by_seed[s])) for s in seeds]
        base_model, mix, task, variant, language, metric = cell
        rows.append(
            SummaryRow(
                base_model=base_model,
                mix=mix,
                task=task,
                variant=variant,
                language=language,
                metric=metric,
                mean=mean,
                ci_low=min(low, mean),
                ci_high=max(high, mean),
                confidence=confidence,
                n_items=len(sums),
                n_seeds=len(seeds),
                n_obs=int(counts.sum()),
                seeds=seeds,
                seed_means=seed_means,
                seed_min=min(seed_means),
                seed_max=max(seed_means),
                seed_std=float(np.std(seed_means, ddof=1)) if len(seeds) > 1 else None,
                outcomes=outcomes[cell[:5]],
            )
        )
    return rows


def paired_tests(
    records: Iterable[ItemResult],
    *,
    reference: str = REFERENCE_MIX,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> list[PairedTest]:
    """Every other mix against `reference`, per base model, task, variant, language and metric.

    Pairs are (item, seed) observations both mixes have; cells without a shared pair are skipped.
    The p-value is the share of re-centred bootstrap replicates at least as far from zero as the
    observed difference, (1 + hits) / (1 + resamples), so it is never exactly 0.
    """
    cells = _cells(records)
    raw: list[dict[str, Any]] = []
    for cell in _sorted_cells(cells):
        base_model, mix, task, variant, language, metric = cell
        ref_cell = (base_model, reference, task, variant, language, metric)
        if mix == reference or ref_cell not in cells:
            continue
        ours, theirs = cells[cell], cells[ref_cell]
        diffs: Observations = {}
        for item in ours.keys() & theirs.keys():
            shared = ours[item].keys() & theirs[item].keys()
            if shared:
                diffs[item] = {s: ours[item][s] - theirs[item][s] for s in shared}
        if not diffs:
            continue
        sums, counts = _per_item(diffs)
        observed = float(sums.sum() / counts.sum())
        if len(sums) > 1:
            replicates = cluster_bootstrap(sums, counts, n_resamples, _rng(seed, ("paired", *cell, reference)))
            low, high = _interval(replicates, confidence)
            hits = int(np.count_nonzero(np.abs(replicates - observed) >= abs(observed) - 1e-12))
            p_value = (1 + hits) / (1 + n_resamples)
        else:
            low = high = observed
            p_value = 1.0  # one item cannot tell a difference from noise
        raw.append(
            dict(
                base_model=base_model,
                task=task,
                variant=variant,
                language=language,
                metric=metric,
                mix=mix,
                reference=reference,
                mean_diff=observed,
                ci_low=min(low, observed),
                ci_high=max(high, observed),
                confidence=confidence,
                p_value=p_value,
                n_items=len(sums),
                n_pairs=int(counts.sum()),
            )
        )
    families: dict[tuple, list[int]] = defaultdict(list)
    for index, test in enumerate(raw):
        families[(test["base_model"], test["task"], test["variant"], test["metric"])].append(index)
    adjusted = [0.0] * len(raw)
    for members in families.values():
        for index, p in zip(members, holm([raw[i]["p_value"] for i in members]), strict=True):
            adjusted[index] = p
    return [PairedTest(**test, p_holm=p) for test, p in zip(raw, adjusted, strict=True)]


def aggregate(
    records: Iterable[ItemResult],
    report: ReportConfig | None = None,
    *,
    reference: str = REFERENCE_MIX,
    seed: int = 0,
    shards: Iterable[str] = (),
) -> Aggregate:
    """Summary rows, paired tests and outcome counts, with the confidence level and resample count of
    `report`; `shards` (the result keys read) is kept so the report can find each cell's samples."""
    report = report or ReportConfig()
    records = list(records)
    options = dict(confidence=report.confidence, n_resamples=report.bootstrap_samples, seed=seed)
    counts = outcome_counts(records)
    return Aggregate(
        rows=summarize(records, **options),
        tests=paired_tests(records, reference=reference, **options),
        confidence=report.confidence,
        n_resamples=report.bootstrap_samples,
        seed=seed,
        reference=reference,
        outcomes=[CellOutcomes(*group, counts=counts[group]) for group in sorted(counts, key=_group_key)],
        shards=sorted(shards),
    )


def check_error_share(outcomes: Iterable[CellOutcomes], max_share: float) -> None:
    """Raise FailedPrecondition naming each task whose share of `error` items is above `max_share`.

    The share is per task, over all its item × seed observations in the study: one task's failing judge
    is not diluted by the items of tasks that need no judge.
    """
    by_task: dict[str, list[CellOutcomes]] = defaultdict(list)
    for cell in outcomes:
        by_task[cell.task].append(cell)
    problems = []
    for task, cells in by_task.items():
        errors = sum(c.counts.get(Outcome.ERROR, 0) for c in cells)
        total = sum(sum(c.counts.values()) for c in cells)
        if total and errors / total > max_share:
            failed = ", ".join(
                f"{'/'.join(p for p in (c.base_model, c.mix, task, c.variant, c.language) if p)} "
                f"({c.counts[Outcome.ERROR]} of {sum(c.counts.values())})"
                for c in cells
                if c.counts.get(Outcome.ERROR)
            )
            problems.append(f"{task}: {errors} of {total} items ({errors / total:.1%}) ended in error, in {failed}")
    if problems:
        raise FailedPrecondition(
            f"more items ended in error than the allowed {max_share:.1%}: {'; '.join(problems)}. The results "
            "are stored; `polyglot samples --outcome error` shows the failed items",
            field="evaluation.max_error_share",
        )


_SLUG = re.compile(r"[^a-z0-9]+")


def cell_slug(*parts: str) -> str:
    """A file-name-safe id for a table or figure (`chat-helpfulness`, `xquad-en-xx-em`)."""
    return "-".join(p for p in (_SLUG.sub("-", part.lower()).strip("-") for part in parts) if p)
