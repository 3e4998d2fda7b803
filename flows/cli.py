"""`polyglot`: the app layer. Serve the services, run them all locally, check, plan and run studies.

polyglot serve lid --port 50051        # one service, in the foreground (the same command as `polyglot-serve lid`)
polyglot up                            # all four on loopback until Ctrl-C
polyglot health 127.0.0.1:50051        # SERVING?
polyglot config check configs/smoke.yaml
"""

from __future__ import annotations

import importlib
import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.common import serve
from services.common.catalog import SERVICES
from services.common.errors import PolyglotError

console = Console(stderr=True)
app = typer.Typer(
    help="Polyglot: how much multilinguality does instruction tuning need? Services, flows and tools.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Study configs.", no_args_is_help=True)
study_app = typer.Typer(help="Run the study (Prefect flows over the services).", no_args_is_help=True)
app.add_typer(serve.app, name="serve")
app.add_typer(config_app, name="config")
app.add_typer(study_app, name="study")
app.add_typer(importlib.import_module("flows.data.cli").app, name="data")


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@app.command()
def up(
    base_port: Annotated[
        int,
        typer.Option(min=1, max=65000, help=f"{' / '.join(SERVICES)} get this port, +1, +2 and so on."),
    ] = next(iter(SERVICES.values())).port,
    only: Annotated[list[str] | None, typer.Option(help="Start only these services (repeatable).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Start, check health, stop, and exit.")] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for each service's health.")] = 120,
):
    """Start the services on loopback as child processes; stop them cleanly on Ctrl-C or SIGTERM."""
    from services.common.local import LocalServices

    names = only or list(SERVICES)
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        raise typer.BadParameter(f"unknown service(s) {unknown}; choose from {list(SERVICES)}", param_hint="--only")
    with LocalServices(names, base_port=base_port) as services:
        try:
            services.wait_healthy(timeout)
        except PolyglotError as exc:
            raise _fail(str(exc)) from None
        table = Table("service", "address", "pid", "health", title="Polyglot services")
        for name, proc in services.processes.items():
            table.add_row(name, services.addresses[name], str(proc.pid), "SERVING")
        console.print(table)
        if check:
            return
        console.print("Ctrl-C stops them.")
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        try:
            while not stop["now"] and services.all_alive():
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        if not services.all_alive():
            raise _fail(f"a service exited: {services.exit_codes()}")


@app.command()
def health(
    addresses: Annotated[list[str], typer.Argument(help="host:port of each service to check.")],
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for SERVING.")] = 5.0,
):
    """Exit 0 if every address answers grpc.health.v1 SERVING."""
    from services.common.client import wait_for_health

    failed = False
    for address in addresses:
        try:
            wait_for_health(address, timeout)
            console.print(f"{address}: [green]SERVING[/]")
        except PolyglotError as exc:
            failed = True
            console.print(f"{address}: [red]{exc}[/]")
    if failed:
        raise typer.Exit(1)


@config_app.command("check")
def config_check(path: Annotated[Path, typer.Argument(help="Study config YAML.")]):
    """Validate a study config; exit 2 naming the bad field and line."""
    cfg = _load(path)
    console.print(f"[green]ok[/] {path}: study {cfg.name!r}")


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


def _load(path: Path, overrides: dict[str, str] | None = None):
    from flows.config import load_config

    try:
        return load_config(path, overrides)
    except PolyglotError as exc:
        raise _fail(str(exc), 2) from None


@app.command()
def plan(path: Annotated[Path, typer.Argument(help="Study config YAML.")], set_: Overrides = None):
    """Print a study's grid (training jobs, generations, judge calls) with GPU-hour and API-cost estimates."""
    from flows.plan import plan_study, render_plan

    Console().print(render_plan(plan_study(_load(path, _overrides(set_)))))


@study_app.command("run")
def study_run(
    path: Annotated[Path, typer.Argument(help="Study config YAML, e.g. configs/smoke.yaml.")],
    services: Annotated[
        bool,
        typer.Option(
            "--services/--no-services", help="Start the four services locally (else use the config's addresses)."
        ),
    ] = True,
    out: Annotated[Path | None, typer.Option(help="Report directory (default .polyglot/reports/<study>).")] = None,
    state_dir: Annotated[Path, typer.Option(help="Local state: models, logs, Prefect home.")] = Path(".polyglot"),
    set_: Overrides = None,
):
    """Run a whole study: prepare data, train every mix, evaluate, aggregate, report. Reruns resume."""
    from flows.local import run_study

    overrides = _overrides(set_)
    cfg = _load(path, overrides)
    started = time.monotonic()
    try:
        paths = run_study(
            path, start_services=services, state_dir=state_dir, out_dir=out, overrides=overrides, log=console.print
        )
    except PolyglotError as exc:
        raise _fail(str(exc)) from None
    console.print(f"[green]study {cfg.name} done[/] in {time.monotonic() - started:.0f} s")
    for kind, where in paths.items():
        console.print(f"  {kind}: {where}")


def main() -> None:
    serve.switch_off_telemetry()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    app()


if __name__ == "__main__":
    main()
