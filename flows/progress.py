"""Progress of a study as events: the flow code emits them through one hook, whoever runs it draws them.

    from flows import progress
    progress.emit(progress.ShardDone("models/m/mono/ab12/chat/es/s0", items=300, errors=2, seconds=41.0))

    with progress.using(my_sink):        # the CLI: a rich view on stderr (flows.progress_view)
        study(...)

The sink is module-wide rather than a context variable: a local run's flow runs in its own thread and its
tasks in Prefect's thread pools, and every one of them must reach the same sink. Without a sink set (a
deployed run, no CLI) the events go to the log, a line per finished shard and a line per training job
every `LOG_EVERY_S`. A sink that fails never fails the study: progress is a view, not a result.

`Tracker` folds the events into the state the views and the final summary read: jobs, shards done and
failed out of the planned ones, items through each service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

LOG_EVERY_S = 30.0  # a deployed run logs a training job's progress at most this often


@dataclass(frozen=True)
class DataProgress:
    """A dataset being built (`done` of `total` rows; total None when unknown) or ended (`status`)."""

    dataset: str
    done: int = 0
    total: int | None = None
    status: str = "running"  # running | built | skipped


@dataclass(frozen=True)
class TrainingStarted:
    job: str  # "<base model>/<mix>"
    job_id: str
    total_steps: int


@dataclass(frozen=True)
class TrainingProgress:
    """One report of a trainer job (the trainer's `Progress`, streamed by WatchJob)."""

    job: str
    step: int
    total_steps: int
    loss: float
    tokens_per_second: float
    eta_seconds: float


@dataclass(frozen=True)
class TrainingDone:
    job: str
    state: str  # the job's final state, or "stored" for a model the store already held
    step: int = 0
    loss: float = 0.0
    error: str = ""


@dataclass(frozen=True)
class ShardInfo:
    """A planned shard: `key` is its directory (`Shard.key`), `model` "<base model>/<mix>"."""

    key: str
    model: str
    task: str
    language: str
    seed: int
    items: int
    services: tuple[str, ...]  # the services its items go through


@dataclass(frozen=True)
class EvaluationPlanned:
    shards: tuple[ShardInfo, ...]
    stored: frozenset[str] = frozenset()  # keys of shards the store already holds


@dataclass(frozen=True)
class ShardDone:
    key: str
    items: int
    errors: int  # items whose outcome is not ok
    seconds: float


@dataclass(frozen=True)
class ShardFailed:
    key: str
    error: str


@dataclass(frozen=True)
class ScoringProgress:
    """`polyglot score` working through existing outputs: `done` of `total` texts of one `stage` (lid, judge)."""

    stage: str
    done: int
    total: int


Event = (
    DataProgress | TrainingStarted | TrainingProgress | TrainingDone | EvaluationPlanned | ShardDone | ShardFailed
    | ScoringProgress
)  # fmt: skip
Sink = Callable[[Event], None]

_log = logging.getLogger(__name__)
_sink: Sink | None = None


def emit(event: Event) -> None:
    """Hand `event` to the sink (the log when none is set); never raises."""
    try:
        (_sink or _log_sink)(event)
    except Exception:  # a broken view must not fail a study
        _log.debug("progress sink failed on %r", event, exc_info=True)


@contextmanager
def using(sink: Sink) -> Iterator[Sink]:
    """Send every event to `sink` (from any thread) until the block ends."""
    global _sink
    previous, _sink = _sink, sink
    try:
        yield sink
    finally:
        _sink = previous


# -- what the flow code calls -------------------------------------------------------------------------------


def services_of(task: Any) -> tuple[str, ...]:
    """The services a task's items go through (an `EvalTask`: its `method` and `graded_by`); every generated
    reply also gets lid's line check (`flows.steps.evaluate_shard`)."""
    uses_lid = task.method == "generate" or task.graded_by in ("lid", "judge")
    return ("generator",) + (("lid",) if uses_lid else ()) + (("judge",) if task.graded_by == "judge" else ())


def plan_shards(shards: Sequence[Any], stored: set[str]) -> EvaluationPlanned:
    """The event for a study's shards (`flows.steps.Shard`s) and the keys of those already stored."""
    from flows.evals import TASKS

    infos = tuple(
        ShardInfo(
            key=s.key,
            model=f"{s.model.base_model}/{s.model.mix}",
            task=s.task,
            language=s.language,
            seed=s.seed,
            items=s.evalset.manifest.rows,
            services=services_of(TASKS.get(s.task)),
        )
        for s in shards
    )
    return EvaluationPlanned(infos, frozenset(stored))


def report_scoring(stage: str, done: int, total: int) -> None:
    """The `progress` of `flows.grading`'s batched lid and judge calls, as ScoringProgress events."""
    emit(ScoringProgress(stage, done, total))


def training_reporter(job: str) -> Callable[[Any], None]:
    """An `on_progress` for `TrainerClient.wait`: each trainer `Progress` as a TrainingProgress event."""

    def report(p: Any) -> None:
        emit(TrainingProgress(job, p.step, p.total_steps, p.loss, p.tokens_per_second, p.eta_seconds))

    return report


class DataReporter:
    """The data builders' `Reporter` (flows.data.build) as DataProgress events."""

    def __init__(self) -> None:
        self.done: Counter[str] = Counter()
        self.totals: dict[str, int | None] = {}

    def begin(self, name: str, total: int | None) -> None:
        self.totals[name] = total
        emit(DataProgress(name, 0, total))

    def advance(self, name: str, amount: int = 1) -> None:
        self.done[name] += amount
        emit(DataProgress(name, self.done[name], self.totals.get(name)))

    def end(self, name: str, status: str) -> None:
        emit(DataProgress(name, self.done[name], self.totals.get(name), status))


# -- state --------------------------------------------------------------------------------------------------


@dataclass
class TrainingJob:
    job_id: str = ""
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    tokens_per_second: float = 0.0
    eta_seconds: float | None = None
    state: str = "QUEUED"
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started


@dataclass
class CellState:
    """Shards of one task × model."""

    planned: int = 0
    done: int = 0
    failed: int = 0
    ran: int = 0  # shards run by this run (the others were stored before)
    errors: int = 0  # items that ended in error, over the shards it ran
    seconds: float = 0.0


class Tracker:
    """The events folded into the current state; `apply` is safe from any thread."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.started = time.monotonic()
        self.data: dict[str, DataProgress] = {}
        self.jobs: dict[str, TrainingJob] = {}
        self.shards: dict[str, ShardInfo] = {}
        self.done: dict[str, ShardDone | None] = {}  # None: stored before this run
        self.failed: dict[str, str] = {}

    def apply(self, event: Event) -> None:
        with self.lock:
            if isinstance(event, DataProgress):
                self.data[event.dataset] = event
            elif isinstance(event, TrainingStarted):
                self.jobs[event.job] = TrainingJob(event.job_id, total_steps=event.total_steps)
            elif isinstance(event, TrainingProgress):
                job = self.jobs.setdefault(event.job, TrainingJob())
                # The trainer's first report (its start) has no loss, rate or ETA yet: zeros, not values.
                job.step, job.total_steps, job.loss = event.step, event.total_steps, event.loss or job.loss
                job.tokens_per_second = event.tokens_per_second or job.tokens_per_second
                job.eta_seconds = event.eta_seconds or (0.0 if event.step >= event.total_steps else None)
                job.state = "RUNNING"
            elif isinstance(event, TrainingDone):
                job = self.jobs.setdefault(event.job, TrainingJob())
                job.state, job.error, job.ended, job.eta_seconds = event.state, event.error, time.monotonic(), 0.0
                job.step = event.step or job.step
                job.loss = event.loss or job.loss
            elif isinstance(event, EvaluationPlanned):
                self.shards.update({s.key: s for s in event.shards})
                self.done.update({key: None for key in event.stored if key not in self.done})
            elif isinstance(event, ShardDone):
                self.done[event.key] = event
                self.failed.pop(event.key, None)  # a retry that passed
            elif isinstance(event, ShardFailed) and event.key not in self.done:
                self.failed[event.key] = event.error

    def shard_counts(self) -> tuple[int, int, int]:
        """(done, failed, planned) shards."""
        with self.lock:
            return len(self.done), len(self.failed), len(self.shards)

    def service_items(self) -> dict[str, tuple[int, int]]:
        """(items done, items planned) per service, over the shards still to run when the run started."""
        with self.lock:
            totals: Counter[str] = Counter()
            done: Counter[str] = Counter()
            for key, shard in self.shards.items():
                if key in self.done and self.done[key] is None:
                    continue  # stored before: not work of this run
                for service in shard.services:
                    totals[service] += shard.items
                    if self.done.get(key) is not None:
                        done[service] += shard.items
            return {name: (done[name], totals[name]) for name in totals}

    def cells(self) -> dict[tuple[str, str], CellState]:
        """Shard counts per (task, model)."""
        with self.lock:
            cells: dict[tuple[str, str], CellState] = {}
            for key, shard in self.shards.items():
                cell = cells.setdefault((shard.task, shard.model), CellState())
                cell.planned += 1
                if key in self.done:
                    cell.done += 1
                    finished = self.done[key]
                    if finished is not None:
                        cell.ran += 1
                        cell.errors += finished.errors
                        cell.seconds += finished.seconds
                elif key in self.failed:
                    cell.failed += 1
            return cells


# -- the log, for runs without a CLI ------------------------------------------------------------------------


class LogSink:
    """Events as log lines (Prefect's run logger inside a run, else `logging`): a line per shard that ends,
    per dataset built, per training job at most every `LOG_EVERY_S` and when it ends."""

    def __init__(self) -> None:
        self.tracker = Tracker()
        self.last_logged: dict[str, float] = {}

    def __call__(self, event: Event) -> None:
        self.tracker.apply(event)
        line = self.line(event)
        if line:
            _logger().info("%s", line)

    def line(self, event: Event) -> str | None:
        if isinstance(event, TrainingProgress):
            if not event.loss and event.step < event.total_steps:
                return None  # the trainer's start report: nothing measured yet
            now = time.monotonic()
            if now - self.last_logged.get(event.job, 0.0) < LOG_EVERY_S and event.step < event.total_steps:
                return None
            self.last_logged[event.job] = now
            return training_line(event)
        if isinstance(event, TrainingDone):
            return f"train {event.job}: {event.state.lower()} at step {event.step}"
        if isinstance(event, ShardDone | ShardFailed):
            return shard_line(self.tracker, event)
        if isinstance(event, DataProgress) and event.status != "running":
            return f"data {event.dataset}: {'built' if event.status == 'built' else 'already built'}"
        if isinstance(event, EvaluationPlanned):
            done, _, planned = self.tracker.shard_counts()
            return f"evaluate: {planned} shards, {done} already stored"
        return None


def _logger() -> logging.Logger | logging.LoggerAdapter:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return _log


_log_sink = LogSink()


# -- words shared by the log and the views ------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    """`1h02m`, `3m05s`, `12s`; `-` when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def training_line(p: TrainingProgress) -> str:
    """`train tiny/mono: step 10/100 · loss 2.4 · 1,234 tok/s · ETA 1m30s`; what the trainer has not
    measured yet (its start report's zeros) is left out."""
    parts = [f"train {p.job}: step {p.step}/{p.total_steps}"]
    parts += [f"loss {p.loss:.4g}"] if p.loss else []
    parts += [f"{p.tokens_per_second:,.0f} tok/s"] if p.tokens_per_second else []
    parts += [f"ETA {duration(p.eta_seconds)}"] if p.eta_seconds else []
    return " · ".join(parts)


def shard_line(tracker: Tracker, event: ShardDone | ShardFailed) -> str:
    """`evaluate 12/777: chat es s0 tiny/mono done (300 items, 2 errors, 41s)`, N counting done shards."""
    done, failed, planned = tracker.shard_counts()
    shard = tracker.shards.get(event.key)
    what = f"{shard.task} {shard.language} s{shard.seed} {shard.model}" if shard else event.key
    head = f"evaluate {done}/{planned or '?'}" + (f" ({failed} failed)" if failed else "")
    if isinstance(event, ShardFailed):
        return f"{head}: {what} failed: {event.error.splitlines()[0] if event.error else ''}"
    errors = f", {event.errors} errors" if event.errors else ""
    return f"{head}: {what} done ({event.items} items{errors}, {duration(event.seconds)})"
