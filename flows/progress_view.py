"""The CLI's view of a run's progress (`flows.progress` events), its summary table and its results.

    with ProgressView(console) as view, progress.using(view):    # console: a rich Console on stderr
        paths = run_study(...)
    view.finish(paths, study="smoke", json_out=False)            # summary on stderr, paths on stdout

On a terminal the view is live rich progress: a bar per training job (step/total, loss, tokens/s, the
trainer's ETA), one for the evaluation's shards (N/M, ETA) and one per service with its items/s and ETA,
one per dataset being built. Elsewhere (a pipe, a CI log) it prints lines: every shard that ends with its N
of M, a training job's progress every `LINE_EVERY_S`. Either way it is all on stderr: stdout carries only
the results (the results file and the report files, a path a line), or with `--json` one JSON object.
`quiet` draws nothing and prints no summary; the results still go to stdout.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from flows import progress as events
from flows.progress import Tracker, duration, shard_line, training_line

LINE_EVERY_S = 15.0  # off a terminal, a training job's progress line at most this often


class InfoColumn(ProgressColumn):
    """A task's `detail`, its rate (`rate_unit` per second, from rich's own estimate) and its ETA: the
    task's `eta` field when the work reports one (the trainer does), else rich's estimate."""

    def render(self, task: Task) -> Text:
        parts = [task.fields["detail"]] if task.fields.get("detail") else []
        if task.fields.get("rate_unit") and task.speed:
            parts.append(f"{task.speed:,.1f} {task.fields['rate_unit']}/s")
        eta = task.fields.get("eta", task.time_remaining)
        if not task.finished and eta is not None:
            parts.append(f"ETA {duration(eta)}")
        return Text(" · ".join(parts), style="progress.remaining")


class ProgressView:
    """A `flows.progress` sink drawing on `console` (stderr); a context manager around the run."""

    def __init__(self, console: Console, *, quiet: bool = False, live: bool | None = None):
        self.console = console
        self.quiet = quiet
        self.live = not quiet and (console.is_terminal if live is None else live)
        self.tracker = Tracker()
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(), InfoColumn(),
            console=console, transient=False, refresh_per_second=4,
        )  # fmt: skip
        self.ids: dict[str, TaskID] = {}
        self.last_line: dict[str, float] = {}
        self._saved: tuple[str | None, int] | None = None

    # -- the run ------------------------------------------------------------------------------------------

    def __enter__(self) -> ProgressView:
        if self.live or self.quiet:
            self._quiet_prefect()
        if self.live:
            self.bars.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.bars.stop()
        self._restore_prefect()

    def __call__(self, event: events.Event) -> None:
        with self.tracker.lock:
            self.tracker.apply(event)
            if self.live:
                self._draw(event)
            elif not self.quiet:
                line = self._line(event)
                if line:
                    self.console.print(escape(line), soft_wrap=True, highlight=False)

    def log(self, message: str) -> None:
        """The run's own messages (preparing models, services up): nothing when quiet."""
        if not self.quiet:
            self.console.print(message, soft_wrap=True)

    def _quiet_prefect(self) -> None:
        """Prefect's INFO lines (a pair per task run) would scroll the bars away and fill a quiet run's
        stderr; its warnings and errors still show. The env var reaches Prefect's logging config when it is
        first imported, the level a Prefect that is already set up."""
        logger = logging.getLogger("prefect")
        self._saved = (os.environ.get("PREFECT_LOGGING_LEVEL"), logger.level)
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))

    def _restore_prefect(self) -> None:
        if self._saved is None:
            return
        env, level = self._saved
        if env is None:
            os.environ.pop("PREFECT_LOGGING_LEVEL", None)
        logging.getLogger("prefect").setLevel(level)
        self._saved = None

    # -- lines, off a terminal ----------------------------------------------------------------------------

    def _line(self, event: events.Event) -> str | None:
        t = self.tracker
        if isinstance(event, events.TrainingStarted):
            return f"train {event.job}: job {event.job_id}, {event.total_steps} steps"
        if isinstance(event, events.TrainingProgress):
            if not event.loss and event.step < event.total_steps:
                return None  # the trainer's start report: the job's line above said as much
            now, last = time.monotonic(), self.last_line.get(event.job)
            if last is not None and now - last < LINE_EVERY_S and event.step < event.total_steps:
                return None
            self.last_line[event.job] = now
            return training_line(event)
        if isinstance(event, events.TrainingDone):
            job = t.jobs[event.job]
            loss = f", loss {job.loss:.4g}" if job.loss is not None else ""
            error = f": {event.error}" if event.error else ""
            return f"train {event.job}: {event.state.lower()} at step {job.step}{loss}{error}"
        if isinstance(event, events.EvaluationPlanned):
            done, _, planned = t.shard_counts()
            items = ", ".join(f"{n:,} items through {name}" for name, (_, n) in t.service_items().items())
            return f"evaluate: {planned} shards, {done} already stored" + (f"; {items}" if items else "")
        if isinstance(event, events.ShardDone | events.ShardFailed):
            return shard_line(t, event)
        if isinstance(event, events.DataProgress) and event.status != "running":
            return f"data {event.dataset}: {'built' if event.status == 'built' else 'already built'}"
        if isinstance(event, events.ScoringProgress):
            now, last = time.monotonic(), self.last_line.get(f"score:{event.stage}")
            if last is not None and now - last < LINE_EVERY_S and event.done < event.total:
                return None
            self.last_line[f"score:{event.stage}"] = now
            return f"score {event.stage}: {event.done:,}/{event.total:,}"
        return None

    # -- bars, on a terminal ------------------------------------------------------------------------------

    def _bar(self, name: str, description: str, total: float | None, **fields: Any) -> TaskID:
        if name not in self.ids:
            self.ids[name] = self.bars.add_task(description, total=total, **fields)
        return self.ids[name]

    def _draw(self, event: events.Event) -> None:
        t, bars = self.tracker, self.bars
        if isinstance(event, events.DataProgress):
            bar = self._bar(f"data:{event.dataset}", f"data {event.dataset}", event.total)
            if event.status == "running":
                bars.update(bar, total=event.total, completed=event.done)
            else:
                total = event.total or event.done or 1
                label = "[green]built[/]" if event.status == "built" else "[dim]already built[/]"
                bars.update(bar, description=f"data {event.dataset} {label}", total=total, completed=total)
        elif isinstance(event, events.TrainingStarted | events.TrainingProgress | events.TrainingDone):
            job = t.jobs[event.job]
            bar = self._bar(f"train:{event.job}", f"train {event.job}", job.total_steps or None)
            detail = " · ".join(
                part
                for part in (
                    f"loss {job.loss:.4g}" if job.loss is not None else "",
                    f"{job.tokens_per_second:,.0f} tok/s" if job.tokens_per_second and job.ended is None else "",
                    "" if job.state in ("RUNNING", "SUCCEEDED") else job.state.lower(),
                )
                if part
            )
            total = job.total_steps or (1 if job.ended is not None else None)  # a stored model: one full bar
            completed = total if job.state in ("SUCCEEDED", "stored") and total else job.step
            bars.update(bar, total=total, completed=completed, detail=detail, eta=job.eta_seconds)
        elif isinstance(event, events.ScoringProgress):
            bar = self._bar(f"score:{event.stage}", f"score {event.stage}", event.total, rate_unit="texts")
            bars.update(bar, total=event.total, completed=event.done)
        elif isinstance(event, events.EvaluationPlanned | events.ShardDone | events.ShardFailed):
            done, failed, planned = t.shard_counts()
            bar = self._bar("evaluate", "evaluate shards", planned, rate_unit="")
            bars.update(bar, total=planned, completed=done, detail=f"[red]{failed} failed[/]" if failed else "")
            for service, (items_done, items) in t.service_items().items():
                bar = self._bar(f"service:{service}", f"  {service} items", items, rate_unit="items")
                bars.update(bar, total=items, completed=items_done)
            if isinstance(event, events.ShardFailed):
                self.console.print(escape(shard_line(t, event)), soft_wrap=True, style="red")

    # -- the end ------------------------------------------------------------------------------------------

    def finish(self, paths: dict[str, Any], *, study: str, json_out: bool, status: str = "succeeded") -> None:
        """The summary table on stderr (not when quiet); the results on stdout."""
        results = results_of(paths)
        aggregate = _aggregate(results)
        rows = summary_rows(self.tracker, aggregate)
        if not self.quiet:
            for table in (training_table(self.tracker), summary_table(rows, study)):
                if table is not None:
                    self.console.print(table)
        if json_out:
            typer.echo(json.dumps(self.document(status, study, results, rows), sort_keys=True))
        else:
            for where in results.values():
                typer.echo(where)

    def failed(self, status: str, error: str, *, study: str, json_out: bool) -> None:
        """In JSON mode, the failure as the one object on stdout (the message itself went to stderr)."""
        if json_out:
            rows = summary_rows(self.tracker, None)
            typer.echo(json.dumps(self.document(status, study, {}, rows) | {"error": error}, sort_keys=True))

    def document(self, status: str, study: str, results: dict[str, str], rows: list[dict]) -> dict[str, Any]:
        done, failed, planned = self.tracker.shard_counts()
        jobs = {
            name: {"state": j.state, "step": j.step, "total_steps": j.total_steps, "loss": j.loss,
                   "elapsed_s": round(j.elapsed, 1)}
            for name, j in self.tracker.jobs.items()
        }  # fmt: skip
        return {
            "status": status,
            "study": study,
            **results,
            "elapsed_s": round(time.monotonic() - self.tracker.started, 1),
            "training": jobs,
            "shards": {"planned": planned, "done": done, "failed": failed},
            "summary": rows,
        }


def results_of(paths: dict[str, Any]) -> dict[str, str]:
    """What goes to stdout, in order: the results file, the report files, the store copy. A study's report
    directory holds its aggregate (`aggregate.json`, written last), which is its results file."""
    reports = {k: str(v) for k, v in paths.items() if k in ("html", "md")}
    results = str(paths["results"]) if "results" in paths else None
    if results is None and reports:
        aggregate = Path(next(iter(reports.values()))).parent / "aggregate.json"
        results = str(aggregate) if aggregate.exists() else None
    out = {"results": results} if results else {}
    out |= {f"report_{kind}": where for kind, where in reports.items()}
    return out | ({"store": str(paths["store"])} if "store" in paths else {})


def _aggregate(results: dict[str, str]) -> dict[str, Any] | None:
    """The aggregate beside the results and reports (a study's report directory, `polyglot score --out`)."""
    for where in results.values():
        candidate = Path(where).parent / "aggregate.json"
        if "://" not in where and candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except (OSError, ValueError):
                return None
    return None


def headline(task: str) -> str | None:
    """A task's headline metric: the first it declares (chat: helpfulness; XQuAD: em)."""
    from flows.evals import TASKS

    try:
        return TASKS.get(task).metric_names()[0]
    except Exception:  # a task this process does not know (a plugin's): no headline
        return None


def summary_rows(tracker: Tracker, aggregate: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per task × model: the headline metric's mean over its languages and variants (from the aggregate's
    rows), shards done / failed / planned and the seconds they took in this run."""
    means: dict[tuple[str, str], list[float]] = {}
    for row in (aggregate or {}).get("rows", []):
        if row["metric"] == headline(row["task"]):
            means.setdefault((row["task"], f"{row['base_model']}/{row['mix']}"), []).append(row["mean"])
    cells = tracker.cells()
    rows = []
    for task, model in sorted(set(cells) | set(means)):
        cell, values = cells.get((task, model)), means.get((task, model))
        rows.append(
            {
                "task": task,
                "model": model,
                "metric": headline(task),
                "value": sum(values) / len(values) if values else None,
                "cells": len(values or []),
                "shards_done": cell.done if cell else None,
                "shards_failed": cell.failed if cell else None,
                "shards_planned": cell.planned if cell else None,
                "item_errors": cell.errors if cell else None,
                "elapsed_s": round(cell.seconds, 1) if cell and cell.ran else None,  # None: all stored before
            }
        )
    return rows


def summary_table(rows: list[dict[str, Any]], study: str) -> Table | None:
    if not rows:
        return None
    table = Table(title=f"study {study}: summary", caption="headline: the task's first metric, mean over languages")
    for name in ("task", "model", "headline", "shards done", "failed", "elapsed"):
        table.add_column(name, no_wrap=name in ("model", "headline"))
    for row in rows:
        value = f"{row['metric']} {row['value']:.3f}" if row["value"] is not None else "-"
        planned = row["shards_planned"]
        done = f"{row['shards_done']}/{planned}" if planned is not None else "-"
        failed = str(row["shards_failed"]) if row["shards_failed"] is not None else "-"
        elapsed = duration(row["elapsed_s"]) if row["elapsed_s"] is not None else "-"
        table.add_row(row["task"], row["model"], value, done, failed, elapsed)
    return table


def training_table(tracker: Tracker) -> Table | None:
    if not tracker.jobs:
        return None
    table = Table("training job", "state", "steps", "final loss", "elapsed", title="training")
    for name, job in tracker.jobs.items():
        loss = f"{job.loss:.4g}" if job.loss is not None else "-"
        steps = f"{job.step}/{job.total_steps}" if job.total_steps else "-"
        elapsed = duration(job.elapsed) if job.state != "stored" else "-"
        table.add_row(name, job.state.lower(), steps, loss, elapsed)
    return table
