"""`polyglot plan CONFIG --gpus N`: the study's GPU-hours and wall-clock time on a cluster of N GPUs.

Per-unit figures come from measurements where `bench/results/` has them, else from the plan's stated
assumptions (`flows.plan.Assumptions`), and every phase says which it used. A benchmark result offers a
figure by carrying a `plan_figures` section measured on a GPU, at a stated model size:

    {"plan_figures": {"gpu": "NVIDIA H200", "params_b": 6.74,
                      "generation_tokens_per_second": 2400.0,      # new tokens/s, batched, one GPU
                      "prefill_tokens_per_second": 21000.0,        # prompt / log-likelihood tokens/s
                      "train_seconds_per_step": 4.1, "train_batch": 64}}

A figure is scaled to the plan's 7B reference linearly in parameters, as the plan scales its own. Results
without the section (the CPU runs on the tiny random model) are listed as not used: the plan says "no
measured figure" rather than stretch a CPU figure of a 2-layer model to a 7B model on a GPU.

The cluster, as the study runs on it (documented with every estimate):
- training: one GPU per LoRA job; jobs at once = min(GPUs, `concurrency.trainer`), longest first;
- evaluation after training: one generator replica per GPU; replicas busy at once = min(GPUs,
  `concurrency.generator`), generation and scoring sharing them; a phase takes at least its longest shard;
- judge and translation calls are API time, not GPU time, and are not in the wall-clock figure.

    polyglot plan configs/paper-llama2-7b.yaml --gpus 8
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Group
from rich.table import Table
from rich.text import Text

from flows.evals import TASKS
from flows.plan import Assumptions, Plan

RESULTS_DIR = Path(__file__).resolve().parents[1] / "bench" / "results"

# The assumption each phase's GPU time rests on, and how it reads.
PHASE_FIGURES = {
    "training": ("train_seconds_per_step", "s per step of {batch} sequences"),
    "generation": ("generation_tokens_per_second", "new tokens/s"),
    "scoring": ("prefill_tokens_per_second", "prompt tokens/s"),
}


def _figure(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


class PlanFigures(BaseModel):
    """The `plan_figures` section of a benchmark result: per-GPU figures measured at a model size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu: str = Field(min_length=1)
    params_b: float = Field(gt=0)
    generation_tokens_per_second: float | None = Field(None, gt=0)
    prefill_tokens_per_second: float | None = Field(None, gt=0)
    train_seconds_per_step: float | None = Field(None, gt=0)
    train_batch: int | None = Field(None, gt=0)


@dataclass(frozen=True)
class Figures:
    """Assumptions with measured figures in place where there are any, and each phase's figure in words."""

    assumptions: Assumptions
    sources: dict[str, str]  # phase → "measured: ..." or "no measured figure: assumed ..."
    unused: list[str]  # result files that offer no GPU figure


def measured_figures(results_dir: Path = RESULTS_DIR, base: Assumptions | None = None) -> Figures:
    """The plan's assumptions, with every figure a result in `results_dir` measured put in their place
    (scaled to the reference size); results are read in name order, a later one overriding."""
    base = base or Assumptions()
    overrides: dict[str, float] = {}
    measured: dict[str, str] = {}
    unused = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            section = json.loads(path.read_text()).get("plan_figures")
            figures = PlanFigures.model_validate(section) if section is not None else None
        except (ValueError, AttributeError, ValidationError) as exc:  # unreadable or malformed: say so
            unused.append(f"{path.name} (unreadable plan_figures: {str(exc).splitlines()[0]})")
            continue
        if figures is None:
            unused.append(path.name)
            continue
        size = figures.params_b / base.reference_params_b  # throughput × size, time ÷ size
        for phase, (name, unit) in PHASE_FIGURES.items():
            value = getattr(figures, name)
            if value is None:
                continue
            batch = figures.train_batch or base.train_reference_batch
            if name == "train_seconds_per_step":
                value = value / size * base.train_reference_batch / batch
            else:
                value = value * size
            overrides[name] = value
            what = f"{_figure(getattr(figures, name))} {unit.format(batch=batch)}"
            measured[phase] = (
                f"measured: {path.name}, {what} on {figures.gpu} at {figures.params_b:g}B"
                f" → {_figure(value)} at {base.reference_params_b:g}B"
            )
    assumptions = base.model_copy(update=overrides)
    sources = {}
    for phase, (name, unit) in PHASE_FIGURES.items():
        what = f"{_figure(getattr(assumptions, name))} {unit.format(batch=assumptions.train_reference_batch)}"
        assumed = f"no measured figure: assumed {what} ({assumptions.gpu}, {assumptions.reference_params_b:g}B)"
        sources[phase] = measured.get(phase, assumed)
    return Figures(assumptions, sources, unused)


@dataclass(frozen=True)
class PhaseEstimate:
    phase: str
    gpu_hours: float  # busy GPU time
    at_once: int  # GPUs busy at once
    wall_hours: float
    figure: str


@dataclass(frozen=True)
class ClusterEstimate:
    gpus: int
    phases: list[PhaseEstimate]
    notes: list[str]

    @property
    def wall_hours(self) -> float:
        return sum(p.wall_hours for p in self.phases)

    @property
    def gpu_hours(self) -> float:
        return sum(p.gpu_hours for p in self.phases)


def _makespan(durations: list[float], machines: int) -> float:
    """Longest-first onto the least loaded machine (within 4/3 of the best schedule)."""
    loads = [0.0] * machines
    for duration in sorted(durations, reverse=True):
        heapq.heapreplace(loads, loads[0] + duration)
    return max(loads)


def cluster_estimate(plan: Plan, gpus: int, sources: dict[str, str]) -> ClusterEstimate:
    """Each phase's GPU-hours and wall-clock time on `gpus` GPUs, as the study schedules its work."""
    notes = []
    trainers = max(1, min(gpus, plan.concurrency.get("trainer", 1)))
    jobs = [j.gpu_hours for j in plan.training_jobs]
    training = PhaseEstimate("training", sum(jobs), trainers, _makespan(jobs, trainers) if jobs else 0.0,
                             sources["training"])  # fmt: skip
    if trainers < min(gpus, len(jobs)):
        notes.append(f"training runs {trainers} job(s) at once (concurrency.trainer): set it to {min(gpus, len(jobs))} "
                     "and give the trainer as many workers to use the GPUs")  # fmt: skip
    replicas = max(1, min(gpus, plan.concurrency.get("generator", 1)))
    if replicas < gpus:
        notes.append(f"evaluation keeps {replicas} generator replica(s) busy (concurrency.generator): set it to "
                     f"{gpus} or more to use every GPU")  # fmt: skip
    phases = [training]
    for phase, method in (("generation", "generate"), ("scoring", "loglikelihood")):
        units = [e for e in plan.evaluations if TASKS.get(e.task).method == method]
        hours = sum(e.gpu_hours for e in units)
        longest_shard = max((e.gpu_hours / e.shards for e in units if e.shards), default=0.0)
        phases.append(PhaseEstimate(phase, hours, replicas, max(hours / replicas, longest_shard), sources[phase]))
    if plan.pipeline_check:
        notes.append("pipeline check: a tiny random model; these GPU figures do not describe it")
    return ClusterEstimate(gpus, phases, notes)


def render_cluster(estimate: ClusterEstimate, figures: Figures) -> Group:
    gpu = figures.assumptions.gpu
    table = Table(title=f"Cluster: {estimate.gpus} GPUs ({gpu} figures)", title_justify="left")
    for column in ("phase", "GPU-hours", "GPUs at once", "wall-clock h", "figure used"):
        table.add_column(column, justify="left" if column in ("phase", "figure used") else "right")
    for p in estimate.phases:
        table.add_row(p.phase, f"{p.gpu_hours:,.1f}", str(p.at_once), f"{p.wall_hours:,.1f}", p.figure)
    reserved = estimate.wall_hours * estimate.gpus
    table.add_row("total", f"{estimate.gpu_hours:,.1f}", "", f"{estimate.wall_hours:,.1f}",
                  f"{estimate.gpus} GPUs held for the wall-clock time: {reserved:,.1f} GPU-hours")  # fmt: skip
    lines = [
        "one GPU per training job and per generator replica; evaluation starts when training ends; "
        "judge and translation API time not included",
        *estimate.notes,
    ]
    if figures.unused:
        lines.append("results without a plan_figures section, not used: " + ", ".join(figures.unused))
    return Group(table, Text("\n".join(f"• {line}" for line in lines), style="yellow"))
