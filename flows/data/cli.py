"""`polyglot data ...`: build the study's tuning mixes and evaluation sets into the artifact store.

    polyglot data build configs/smoke.yaml                       # labels through the lid service
    polyglot data build configs/smoke.yaml --store file:///tmp/a --only mixes
    polyglot data build configs/smoke.yaml --json | jq -r '.datasets[].uri'     # scripts: stdout only

Progress and the table go to stderr; stdout gets each dataset's data URI, a line each (`--json`: one object;
`--quiet`: no progress, no table).

Idempotent: every dataset is keyed by a hash of its inputs, so a second run finds them all and does
nothing (it only asks the lid service which model it runs, which is part of every key).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.common.errors import InvalidArgument, PolyglotError, Unavailable
from services.common.serve import HELP_OPTIONS

app = typer.Typer(
    help="Build instruction-tuning mixes and evaluation sets.", no_args_is_help=True, context_settings=HELP_OPTIONS
)
console = Console(stderr=True)


class Only(StrEnum):
    all = "all"
    mixes = "mixes"
    evalsets = "evalsets"


class RichReporter:
    """Draws the builders' progress as rich progress bars, one line per dataset."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, int] = {}
        self.statuses: dict[str, str] = {}

    def begin(self, name: str, total: int | None) -> None:
        self.tasks[name] = self.progress.add_task(name, total=total)

    def advance(self, name: str, amount: int = 1) -> None:
        if name in self.tasks:
            self.progress.advance(self.tasks[name], amount)

    def end(self, name: str, status: str) -> None:
        self.statuses[name] = status
        label = f"{name} [green]built[/]" if status == "built" else f"{name} [dim]already built[/]"
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(label, total=1)
        task = self.tasks[name]
        total = self.progress.tasks[task].total or 1
        self.progress.update(task, description=label, total=total, completed=total)


def _fail(message: str, code: int) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@app.command()
def build(
    config: Annotated[str, typer.Argument(help="Study config YAML.")],
    store: Annotated[str | None, typer.Option(help="Artifact store URI; default: the config's artifact_store.")] = None,
    only: Annotated[Only, typer.Option(help="Build only the tuning mixes or only the eval sets.")] = Only.all,
    lid: Annotated[str | None, typer.Option(help="lid service address; default: the config's services.lid.")] = None,
    judge: Annotated[
        str | None, typer.Option(help="judge service address (Translate); default: services.judge.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config value: --set data.mixes.k=10 (repeatable).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no table; stdout still lists.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="stdout: one JSON object, not the data URIs.")] = False,
):
    """Build the study's mixes and eval sets into the store; a second run does nothing."""
    from flows.config import load_config
    from flows.data.build import EvalSetBuilder, MixBuilder
    from flows.data.labelling import service_labeller
    from flows.data.translation import judge_translator
    from services.common.store import open_store
    from services.judge.client import JudgeClient
    from services.lid.client import LidClient

    overrides = {}
    for item in set_ or []:
        dotted, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        overrides[dotted] = value
    try:
        study = load_config(config, overrides=overrides)
    except PolyglotError as exc:
        raise _fail(str(exc), 2) from None
    try:
        artifacts = open_store(store or study.artifact_store)
    except InvalidArgument as exc:
        raise _fail(f"--store: {exc.message}", 2) from None

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    results = []
    try:
        with (
            LidClient(lid or study.services.lid, timeout=300) as lid_client,
            JudgeClient(judge or study.services.judge, timeout=600) as judge_client,
            Progress(*columns, console=console, transient=False, disable=quiet) as progress,
        ):
            reporter = RichReporter(progress)
            translator = judge_translator(judge_client, study.judge.provider, study.judge.model, run_id=study.name)
            if only in (Only.all, Only.mixes):
                try:
                    labeller = service_labeller(lid_client)
                except Unavailable as exc:
                    raise Unavailable(
                        f"the lid service at {lid_client.address} is not reachable ({exc.message}); "
                        "start it with `polyglot serve lid` or `polyglot up`, or pass --lid"
                    ) from None
                results += MixBuilder(study.data, artifacts, labeller, translator, reporter).build()
            if only in (Only.all, Only.evalsets):
                results += EvalSetBuilder(study.evaluation, artifacts, translator, reporter).build()
    except PolyglotError as exc:
        if json_:
            typer.echo(json.dumps({"status": "failed", "study": study.name, "error": str(exc)}, sort_keys=True))
        raise _fail(str(exc), 1) from None

    _results(results, study.name, artifacts.uri(""), quiet, json_)


def _results(results, study: str, store: str, quiet: bool, json_: bool) -> None:
    """The table and counts on stderr (not when quiet); the datasets on stdout."""
    if json_:
        datasets = [dict(name=b.name, rows=b.manifest.rows, built=b.built, key=b.key, uri=b.uri) for b in results]
        new = sum(b.built for b in results)
        summary = dict(status="succeeded", study=study, store=store, built=new, already=len(results) - new)
        typer.echo(json.dumps(summary | {"datasets": datasets}, sort_keys=True))
    else:
        for built in results:
            typer.echo(built.uri)
    if not quiet:
        _summary(results, study, store)


def _summary(results, study: str, store: str) -> None:
    table = Table("dataset", "rows", "status", "key", title=f"study {study!r}: datasets in {store}")
    for built in results:
        status = "[green]built[/]" if built.built else "[dim]already built[/]"
        table.add_row(built.name, str(built.manifest.rows), status, built.key)
    console.print(table)
    new = sum(b.built for b in results)
    if new:
        console.print(f"{new} built, {len(results) - new} already in {store}")
    else:
        console.print(f"nothing to do: all {len(results)} datasets are already in {store}")
