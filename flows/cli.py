"""`polyglot`: the app layer. Serve the services, run them all locally, check, plan and run studies.

polyglot serve lid --port 50051        # one service, in the foreground (the same command as `polyglot-serve lid`)
polyglot up                            # all four on loopback until Ctrl-C
polyglot health 127.0.0.1:50051        # SERVING?
polyglot config check configs/smoke.yaml
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.results import Outcome
from services.common import serve
from services.common.catalog import SERVICES
from services.common.errors import PolyglotError

console = Console(stderr=True, soft_wrap=True)  # an error stays one line, whatever the terminal width
app = typer.Typer(
    help="Polyglot: how much multilinguality does instruction tuning need? Services, flows and tools.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings=serve.HELP_OPTIONS,
)
config_app = typer.Typer(help="Study configs.", no_args_is_help=True, context_settings=serve.HELP_OPTIONS)
study_app = typer.Typer(
    help="Run the study (Prefect flows over the services).", no_args_is_help=True, context_settings=serve.HELP_OPTIONS
)
app.add_typer(serve.app, name="serve")
app.add_typer(config_app, name="config")
app.add_typer(study_app, name="study")
app.add_typer(importlib.import_module("flows.data.cli").app, name="data")
app.add_typer(importlib.import_module("flows.protocol.cli").app, name="protocol")


@app.callback()
def _app(version: serve.VersionOption = False) -> None:
    """The app's own options (`--version`); its help text is `Typer(help=...)`'s."""


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@app.command()
def up(
    base_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65000,
            help=f"{' / '.join(SERVICES)} get this port, +1, +2 and so on; a busy one is refused. Default: the "
            "catalog's ports, where a busy one moves to a free port.",
        ),
    ] = None,
    only: Annotated[list[str] | None, typer.Option(help="Start only these services (repeatable).")] = None,
    model: Annotated[
        str | None,
        typer.Option(help="The generator's base model (a directory or hub id); the judge then grades with it."),
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Start, check health, stop, and exit.")] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for each service's health.")] = 120,
    log_dir: Annotated[Path, typer.Option(help="Where each service's log goes.")] = Path(".polyglot/logs"),
):
    """Start the services on loopback as child processes; stop them cleanly on Ctrl-C, SIGTERM or SIGHUP."""
    from flows.local import up_env
    from services.common.local import LocalServices, choose_ports

    names = only or list(SERVICES)
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        raise typer.BadParameter(f"unknown service(s) {unknown}; choose from {list(SERVICES)}", param_hint="--only")
    order = list(SERVICES)
    wanted = {n: SERVICES[n].port if base_port is None else base_port + order.index(n) for n in names}
    try:
        ports = choose_ports(wanted, movable=set(names) if base_port is None else set(), log=console.print)
    except PolyglotError as exc:
        raise _fail(str(exc)) from None
    log_dir.mkdir(parents=True, exist_ok=True)
    services = LocalServices(names, ports=ports, env=up_env(ports, model), log_dir=log_dir)
    stop = {"now": False}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.update(now=True))
    try:
        with services:
            try:
                services.wait_healthy(timeout)
            except PolyglotError as exc:
                raise _fail(str(exc)) from None
            _services_table(services)
            if check:
                return
            console.print(f"Ctrl-C stops them; logs in {log_dir}.")
            while not stop["now"] and services.all_alive():
                time.sleep(0.2)
            if not services.all_alive():
                raise _fail(f"a service exited: {services.exit_codes()}; logs in {log_dir}")
    except KeyboardInterrupt:
        pass  # the with block has stopped them


def _services_table(services) -> None:
    """Only processes that are still running get a PID; one that exited fails the command."""
    table = Table("service", "address", "pid", "health", title="Polyglot services")
    for name, proc in services.processes.items():
        alive = proc.poll() is None
        table.add_row(name, services.addresses[name], str(proc.pid) if alive else "-",
                      "SERVING" if alive else f"exited ({proc.returncode})")  # fmt: skip
    console.print(table)
    if not services.all_alive():
        raise _fail(f"a service exited: {services.exit_codes()}; see its log in {services.log_dir}")


def _address(values: list[str]) -> list[str]:
    from services.common.config.types import parse_address

    try:
        return [parse_address(value) for value in values]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def health(
    addresses: Annotated[list[str], typer.Argument(help="host:port of each service to check.", callback=_address)],
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for SERVING.")] = 5.0,
):
    """Exit 0 if every address answers grpc.health.v1 SERVING; else one line per address saying why not."""
    from services.common.client import wait_for_health

    failed = False
    for address in addresses:
        try:
            wait_for_health(address, timeout)
            console.print(f"{address}: [green]SERVING[/]")
        except PolyglotError as exc:
            failed = True
            console.print(f"[red]{escape(exc.message)}[/]", soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _overrides(values: list[str] | None) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--set")
        pairs[key.strip()] = val
    return pairs


Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config field, e.g. --set training.max_steps=5 (repeatable)."),
]


def _load(
    path: Path, overrides: dict[str, str] | None = None, tasks: list[str] | None = None, *, check_paths: bool = True
):
    """The config, or exit 2. Paths are checked unless the command only reads the config (plan)."""
    from flows.config import load_config

    try:
        return load_config(path, overrides, tasks=tasks, check_paths=check_paths)
    except PolyglotError as exc:
        raise _fail(str(exc), 2) from None


def _tasks(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise typer.BadParameter("name at least one task, e.g. --tasks chat,xnli", param_hint="--tasks")
    return names


Tasks = Annotated[
    str | None,
    typer.Option(
        "--tasks", help="Run only these evaluation tasks, comma-separated (e.g. chat,xnli); others are skipped."
    ),
]


@config_app.command("check")
def config_check(
    paths: Annotated[list[Path], typer.Argument(help="Study config YAML files.")],
    set_: Overrides = None,
    tasks: Tasks = None,
):
    """Validate study configs, and that the files they read exist; exit 2 naming each bad field and line."""
    from flows.config import load_config

    overrides, selected, failed = _overrides(set_), _tasks(tasks), False
    for path in paths:
        try:
            cfg = load_config(path, overrides, tasks=selected, check_paths=True)
        except PolyglotError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            failed = True
            continue
        console.print(f"[green]ok[/] {path}: study {cfg.name!r}")
    if failed:
        raise typer.Exit(2)


@config_app.command("schema")
def config_schema(
    json_schema: Annotated[bool, typer.Option("--json", help="The JSON schema instead of the Markdown table.")] = False,
):
    """Every study config field with its type, default and description (plugin tasks: load them first)."""
    from flows.config import dump_schema, schema_markdown

    typer.echo(json.dumps(dump_schema(), indent=1) if json_schema else schema_markdown())


@app.command()
def plan(
    path: Annotated[Path, typer.Argument(help="Study config YAML.")],
    set_: Overrides = None,
    tasks: Tasks = None,
    gpus: Annotated[
        int | None,
        typer.Option(
            "--gpus",
            min=1,
            help="Also the GPU-hours and wall-clock time per phase on this many GPUs, from the GPU figures "
            "measured in bench/results/ where there are any (it says which), else the assumptions.",
        ),
    ] = None,
    eval_: Annotated[
        bool, typer.Option("--eval", help="The grid of `polyglot eval`: the config's evaluate_models, no training.")
    ] = False,
):
    """Print a study's grid (training jobs, generations, judge calls) with GPU-hour and API-cost estimates."""
    from flows.plan import plan_study, render_plan

    cfg = _load(path, _overrides(set_), _tasks(tasks), check_paths=False)  # a plan may be for another machine
    if eval_:
        try:
            from flows.evaluate_only import chosen

            chosen(cfg, None)
        except PolyglotError as exc:
            raise _fail(str(exc), 2) from None
    if gpus is None:
        Console().print(render_plan(plan_study(cfg, evaluate_only=eval_)))
        return
    from flows.plan_cluster import cluster_estimate, measured_figures, render_cluster

    figures = measured_figures()
    planned = plan_study(cfg, figures.assumptions, evaluate_only=eval_)
    Console().print(render_plan(planned), render_cluster(cluster_estimate(planned, gpus, figures.sources), figures))


@app.command()
def fidelity(
    path: Annotated[Path, typer.Argument(help="Study config YAML.")],
    set_: Overrides = None,
):
    """Print (Markdown) every protocol element: the paper's value, this config's, where it is set, match or
    deviation and the reason (flows/protocol/elements.yaml); e.g. --set protocol.profile=polyglot."""
    from flows.protocol.fidelity import markdown, provenance, rows

    overrides = _overrides(set_)
    cfg = _load(path, overrides, check_paths=False)  # like plan: the table is about the config, not this machine
    typer.echo(markdown(cfg, rows(cfg, provenance(path, overrides, cfg))), nl=False)


StartServices = Annotated[
    bool,
    typer.Option("--services/--no-services", help="Start the four services locally (else use the config's addresses)."),
]
ReportDir = Annotated[Path | None, typer.Option(help="Report directory (default .polyglot/reports/<study>).")]
StateDir = Annotated[Path, typer.Option(help="Local state: models, logs, Prefect home.")]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress and no summary on stderr; stdout still gets the paths.")
]
JsonOut = Annotated[
    bool,
    typer.Option("--json", help="stdout: one JSON object (status, results and report paths, summary), not paths."),
]


@study_app.command("run")
def study_run(
    path: Annotated[Path, typer.Argument(help="Study config YAML, e.g. configs/smoke.yaml.")],
    services: StartServices = True,
    out: ReportDir = None,
    state_dir: StateDir = Path(".polyglot"),
    set_: Overrides = None,
    tasks: Tasks = None,
    quiet: Quiet = False,
    json_: JsonOut = False,
):
    """Run a whole study: prepare data, train every mix, evaluate, aggregate, report. Reruns resume.

    Preflight first (services, store, hub; exit 2 on a problem). Ctrl-C or SIGTERM stops the run within
    seconds, keeping what finished (exit 130); a second Ctrl-C quits at once. Progress and a summary go to
    stderr; stdout gets only the results file and report paths, a line each (`--json`: one object)."""
    _run_locally(path, services, out, state_dir, set_, tasks, check=_compared_study, quiet=quiet, json_out=json_)


def _compared_study(cfg) -> None:
    """`report.compare_with` names a study that has an aggregate to join (else exit 2 before any work)."""
    from flows.report.paper_compare import newest_aggregate

    newest_aggregate(cfg)


def _run_locally(
    path, services, out, state_dir, set_, tasks, flow=None, check=None, *, quiet=False, json_out=False, used=None
):
    """`study run` and `eval`: run the study flow (or `flow`) locally, with preflight, interrupts and exit
    codes; `check(cfg)` vets the config first (exit 2 on a PolyglotError). Progress reaches the view through
    `flows.progress` from the flow's threads."""
    from flows import progress
    from flows.local import Interrupted, PreflightFailed, run_study
    from flows.progress_view import ProgressView

    overrides, selected = _overrides(set_), _tasks(tasks)
    cfg = _load(path, overrides, selected)
    try:
        if check is not None:
            check(cfg)
    except PolyglotError as exc:
        raise _fail(str(exc), 2) from None
    started, view = time.monotonic(), ProgressView(console, quiet=quiet)
    try:
        with view, progress.using(view):
            paths = run_study(
                path,
                start_services=services,
                state_dir=state_dir,
                out_dir=out,
                overrides=overrides,
                tasks=selected,
                hub_offline=USER_HUB_OFFLINE,
                log=view.log,
                flow=flow,
                services_used=used,
            )
    except PreflightFailed as exc:
        for problem in exc.problems:
            console.print(f"[bold red]error:[/] {escape(problem)}", soft_wrap=True)
        view.failed("preflight_failed", "; ".join(exc.problems), study=cfg.name, json_out=json_out)
        raise typer.Exit(2) from None
    except (Interrupted, KeyboardInterrupt) as exc:
        kept = exc.kept if isinstance(exc, Interrupted) else "what finished"
        view.failed("interrupted", f"kept {kept}", study=cfg.name, json_out=json_out)
        console.print(f"[bold]stopped[/]: kept {escape(kept)}; a rerun skips all of it.", soft_wrap=True)
        console.print(f"resume with: polyglot {escape(shlex.join(sys.argv[1:]))}", soft_wrap=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)  # not sys.exit: Prefect's exit hooks would wait on its API, which is gone
    except PolyglotError as exc:
        view.failed("failed", str(exc), study=cfg.name, json_out=json_out)
        raise _fail(str(exc)) from None
    view.log(f"[green]study {cfg.name} done[/] in {time.monotonic() - started:.0f} s")
    view.finish(paths, study=cfg.name, json_out=json_out)


@app.command("eval")
def eval_(
    path: Annotated[Path, typer.Argument(help="Study config YAML with `evaluate_models`.")],
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Only this evaluate_models entry (repeatable).")
    ] = None,
    services: StartServices = True,
    out: ReportDir = None,
    state_dir: StateDir = Path(".polyglot"),
    set_: Overrides = None,
    tasks: Tasks = None,
    quiet: Quiet = False,
    json_: JsonOut = False,
):
    """Evaluate the study's `evaluate_models` (base models as they are, or with an adapter from elsewhere):
    evaluation sets, evaluation, aggregate and report; no mixes, no training. Reruns resume. Output as
    `study run`'s: progress and summary on stderr, the paths on stdout."""
    from functools import partial

    from flows.local import prefect_env

    # Before Prefect's first import, which fixes its settings; nothing is created until the config passes.
    os.environ.update(prefect_env(state_dir))
    from flows.evaluate_only import SERVICES_USED, chosen, evaluate_only

    flow = partial(evaluate_only, models=model)
    check = lambda cfg: chosen(cfg, model)  # noqa: E731
    _run_locally(
        path, services, out, state_dir, set_, tasks, flow, check, quiet=quiet, json_out=json_, used=SERVICES_USED
    )


@app.command()
def samples(
    source: Annotated[str, typer.Argument(help="Study config YAML, or an artifact store URI (file://…, s3://…).")],
    model: Annotated[list[str] | None, typer.Option(help="Only this base model (repeatable).")] = None,
    mix: Annotated[list[str] | None, typer.Option(help="Only this mix, e.g. multi-2 (repeatable).")] = None,
    task: Annotated[list[str] | None, typer.Option(help="Only this task (repeatable).")] = None,
    language: Annotated[list[str] | None, typer.Option(help="Only this language code (repeatable).")] = None,
    outcome: Annotated[list[Outcome] | None, typer.Option(help="Only items with this outcome (repeatable).")] = None,
    seed: Annotated[list[int] | None, typer.Option(help="Only this seed (repeatable).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="JSON Lines on stdout (every field), not a table.")] = False,
    set_: Overrides = None,
):
    """Show the per-item samples of a study's shards: prompt, reply, language labels, the judge's verdict,
    the outcome and the metrics."""
    from flows.samples import dumps_samples, find_samples, samples_table
    from services.common.store import open_store

    cfg = None if "://" in source else _load(Path(source), _overrides(set_), check_paths=False)
    try:
        store = open_store(cfg.artifact_store if cfg else source)
        found = find_samples(
            store, cfg, base_model=model, mix=mix, task=task, language=language, outcome=outcome, seed=seed
        )
    except PolyglotError as exc:
        raise _fail(str(exc)) from None
    if json_:
        typer.echo(dumps_samples(found).decode("utf-8"), nl=False)
    else:
        Console().print(samples_table(found))


@app.command()
def score(
    file: Annotated[Path, typer.Argument(help="Outputs: JSON Lines or CSV (docs/score-format.md), or the paper's.")],
    task: Annotated[str | None, typer.Option(help="Task of records that name none: chat or xquad.")] = None,
    language: Annotated[str | None, typer.Option(help="Language of records that name none.")] = None,
    variant: Annotated[str | None, typer.Option(help="XQuAD variant of records that name none (en:xx, xx:xx).")] = None,
    model: Annotated[str | None, typer.Option(help="Model (the report's mix column) of records naming none.")] = None,
    base_model: Annotated[str | None, typer.Option(help="Base model of records that name none.")] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed of records that name none.")] = None,
    name: Annotated[str, typer.Option(help="The report's study name.")] = "scored",
    out: Annotated[Path | None, typer.Option(help="Report directory (default .polyglot/reports/<name>).")] = None,
    lid: Annotated[
        str | None, typer.Option(help="A lid service's host:port; default: lid.176 in this process.")
    ] = None,
    judge: Annotated[str | None, typer.Option(help="A judge service's host:port: chat gets helpfulness too.")] = None,
    judge_provider: Annotated[str | None, typer.Option(help="The judge's provider (default: the config's).")] = None,
    judge_model: Annotated[str | None, typer.Option(help="The judge's model (default: the config's).")] = None,
    quiet: Quiet = False,
    json_: JsonOut = False,
):
    """Score outputs generated elsewhere with the study's metrics (chat: LID agreement and line pass rate,
    helpfulness with --judge; XQuAD: EM and F1), then aggregate and report. A bad record exits 2 naming its
    line and field; nothing is skipped."""
    from flows import progress
    from flows.config import JudgeConfig
    from flows.progress_view import ProgressView
    from flows.score import read_outputs, score_outputs, write_report

    view = ProgressView(console, quiet=quiet)
    defaults = dict(task=task, language=language, variant=variant, model=model, base_model=base_model, seed=seed)
    try:
        outputs = read_outputs(file, defaults)
    except PolyglotError as exc:
        view.failed("bad_input", str(exc), study=name, json_out=json_)
        raise _fail(escape(str(exc)), 2) from None
    except OSError as exc:
        view.failed("bad_input", f"cannot read {file}: {exc.strerror}", study=name, json_out=json_)
        raise _fail(f"cannot read {file}: {exc.strerror}", 2) from None
    options = JudgeConfig(**{k: v for k, v in {"provider": judge_provider, "model": judge_model}.items() if v})
    judge_options = options.model_dump(include={"provider", "model", "template"})
    try:
        with view, progress.using(view), _score_clients(lid, judge) as (lid_, judge_):  # bars on stderr
            scored = score_outputs(outputs, name, lid_, judge_, judge_options)
        paths = write_report(name, outputs, scored, out or Path(".polyglot") / "reports" / name)
    except PolyglotError as exc:
        view.failed("failed", str(exc), study=name, json_out=json_)
        raise _fail(escape(str(exc))) from None
    view.log(f"[green]scored[/] {len(scored)} of {len(outputs)} records from {escape(str(file))}")
    view.finish(paths, study=name, json_out=json_)


@app.command()
def confusion(
    file: Annotated[Path, typer.Argument(help="Replies: JSON Lines or CSV with `reply` and `language` (optional: "
                                         "`prompt`, `source`, `id`); docs/confusion.md.")],  # fmt: skip
    lid: Annotated[
        str | None, typer.Option(help="A lid service's host:port; default: lid.176 in this process.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Also write records.jsonl, table.csv, matrix.csv, confusion.json and figures.")
    ] = None,
    language: Annotated[str | None, typer.Option(help="Expected language of records that name none.")] = None,
    words: Annotated[
        Path | None,
        typer.Option(
            envvar="POLYGLOT_LID_WORD_LIST",
            exists=True,
            dir_okay=False,
            help="English word list for WPR (in-process; a lid service uses its own), e.g. ../shared/data/lcb/words.",
        ),
    ] = None,
    confidence: Annotated[float, typer.Option(min=0.5, max=0.999, help="Confidence of the intervals.")] = 0.95,
    resamples: Annotated[int, typer.Option(min=10, help="Bootstrap resamples per interval.")] = 1000,
):
    """Line-level language confusion of replies you already have, on CPU (the Language Confusion Benchmark's
    LPR and WPR per language, and which language failing lines drifted into). A malformed record exits 2
    naming its line and field; every record is accounted for (refused ones are listed)."""
    from flows import progress
    from flows.confusion import check_records, confusion_matrix, read_records, rich_tables, summarize, write_outputs
    from flows.progress_view import ProgressView
    from services.common.languages import resolve

    if language is not None and resolve(language) is None:
        raise _fail(f"--language: unknown language {language!r}", 2)
    try:
        records = read_records(file, language)
    except PolyglotError as exc:
        raise _fail(escape(str(exc)), 2) from None
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror}", 2) from None
    try:
        with ProgressView(console) as view, progress.using(view), _lid_checker(lid, words) as checker:
            verdicts = check_records(records, checker)  # progress on stderr; the tables go to stdout
    except PolyglotError as exc:
        raise _fail(escape(str(exc))) from None
    rows = summarize(verdicts, confidence=confidence, n_resamples=resamples)
    matrix = confusion_matrix(verdicts)
    for table in rich_tables(rows, matrix, confidence):
        Console().print(table)
    refused, skipped = [v for v in verdicts if v.refused], sum(v.skipped for v in verdicts)
    console.print(f"{len(records)} records in, {len(verdicts)} out: {len(verdicts) - len(refused) - skipped} "
                  f"scored, {skipped} skipped (no line of 5+ tokens), {len(refused)} refused by lid")  # fmt: skip
    for v in refused:
        console.print(f"  refused: {file}:{v.record.line} ({escape(v.record.id)}): {escape(str(v.refused))}")
    if out is not None:
        for kind, where in write_outputs(out, verdicts, rows, matrix).items():
            console.print(f"  {kind}: {where}")


@contextmanager
def _lid_checker(address: str | None, words: Path | None):
    """`polyglot confusion`'s lid: a client of the service at `address`, or lid.176 in this process with
    `words` as its word list."""
    from services.lid.client import LidClient
    from services.lid.core import LanguageIdentifier

    if address is None:
        yield LanguageIdentifier(word_list=words)
        return
    with LidClient(address) as client:
        yield client


@contextmanager
def _score_clients(lid: str | None, judge: str | None):
    """`polyglot score`'s lid (a client, or lid.176 in this process) and judge (a client, or none)."""
    from services.judge.client import JudgeClient
    from services.lid.client import LidClient
    from services.lid.core import LanguageIdentifier

    lid_ = LidClient(lid) if lid else LanguageIdentifier()
    judge_ = JudgeClient(judge) if judge else None
    try:
        yield lid_, judge_
    finally:
        for client in (lid_, judge_):
            if hasattr(client, "close"):
                client.close()


# The user's own hub setting, read before `main()` defaults it to offline: `study run` goes online for a
# config that needs the hub unless the user said offline.
@app.command(
    "lm-eval",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
)
def lm_eval(ctx: typer.Context):
    """lm-evaluation-harness's own CLI with the `polyglot-grpc` model registered, e.g.
    `polyglot lm-eval run --model polyglot-grpc --model_args address=127.0.0.1:50052 --tasks xnli_de`.

    Every argument goes to lm-eval unchanged (`polyglot lm-eval --help` is lm-eval's help). lm-eval 0.4
    finds models only in its own registry, with no plugin hook, so the adapter registers itself here."""
    import sys

    try:
        from lm_eval.__main__ import cli_evaluate

        import services.generator.lm_eval_adapter  # noqa: F401  (registers polyglot-grpc)
    except ImportError as exc:
        raise _fail(f"lm-eval is not installed ({exc}); pip install 'polyglot[lm-eval]'", 2) from None
    sys.argv = ["lm-eval", *ctx.args]
    cli_evaluate()


USER_HUB_OFFLINE = os.environ.get("HF_HUB_OFFLINE")


def main() -> None:
    serve.switch_off_telemetry()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    app()


if __name__ == "__main__":
    main()
