"""`polyglot data ...`: build the study's datasets (filled in by the study-data work)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Build instruction-tuning mixes and evaluation sets.", no_args_is_help=True)
