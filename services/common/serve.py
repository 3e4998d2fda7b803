"""What `polyglot serve <service>` shares: the common CLI options and the blocking run.

Each service's `main.py` defines its own `serve` command from these (adding its own options), so
`polyglot serve lid --help` documents exactly what that service takes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console

from services.common.errors import PolyglotError
from services.common.server import Registration, run_service
from services.common.settings import ServerSettings, server_settings

console = Console(stderr=True)

Host = Annotated[str | None, typer.Option(help="Interface to bind (0.0.0.0 in containers) (default 127.0.0.1).")]
Port = Annotated[int | None, typer.Option(min=1, max=65535, help="gRPC port (default: the service's own).")]
MetricsPort = Annotated[int | None, typer.Option(min=0, max=65535, help="Prometheus /metrics port; 0 = off.")]
Grace = Annotated[float | None, typer.Option(min=0, help="Seconds in-flight calls get on SIGTERM (default 10).")]


def run(
    service: str,
    build: Callable[[ServerSettings], list[Registration]],
    *,
    host: str | None = None,
    port: int | None = None,
    metrics_port: int | None = None,
    grace: float | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT. Start-up errors (a bad model path, say) exit 1 (2 for bad arguments)."""
    settings = server_settings(service, host=host, port=port, metrics_port=metrics_port, grace_seconds=grace)
    try:
        run_service(settings, build)
    except PolyglotError as exc:
        console.print(f"[bold red]error:[/] {service}: {exc}")
        raise typer.Exit(2 if exc.code == "INVALID_ARGUMENT" else 1) from None
    except OSError as exc:
        console.print(f"[bold red]error:[/] {service}: {exc}")
        raise typer.Exit(1) from None
