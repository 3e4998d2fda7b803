"""Process entry of the generator service: `polyglot serve generator`. Heavy imports stay inside `build`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from services.common.serve import Grace, Host, MetricsPort, Port, run
from services.common.server import Registration
from services.common.settings import ServerSettings
from services.generator.settings import GeneratorSettings

_F = GeneratorSettings.model_fields


def _help(name: str) -> str:
    return f"{_F[name].description} [env POLYGLOT_GENERATOR_{name.upper()}]"


async def build(settings: ServerSettings, generator_settings: GeneratorSettings | None = None) -> list[Registration]:
    from polyglot.v1 import generator_pb2_grpc

    from services.generator.factory import create_generator
    from services.generator.servicer import GeneratorServicer

    generator = await asyncio.to_thread(create_generator, generator_settings or GeneratorSettings())
    return [
        Registration(
            GeneratorServicer(generator),
            generator_pb2_grpc.add_GeneratorServiceServicer_to_server,
            "polyglot.v1.GeneratorService",
        )
    ]


def serve(
    host: Host = None,
    port: Port = None,
    metrics_port: MetricsPort = None,
    grace: Grace = None,
    model: Annotated[str | None, typer.Option(help=_help("model"))] = None,
    backend: Annotated[str | None, typer.Option(help=_help("backend"))] = None,
    max_loaded_adapters: Annotated[int | None, typer.Option(min=1, help=_help("max_loaded_adapters"))] = None,
    device: Annotated[str | None, typer.Option(help=_help("device"))] = None,
    dtype: Annotated[str | None, typer.Option(help=_help("dtype"))] = None,
    tensor_parallel_size: Annotated[int | None, typer.Option(min=1, help=_help("tensor_parallel_size"))] = None,
    max_context: Annotated[int | None, typer.Option(min=2, help=_help("max_context"))] = None,
    max_batch_size: Annotated[int | None, typer.Option(min=1, help=_help("max_batch_size"))] = None,
    max_batch_tokens: Annotated[int | None, typer.Option(min=2, help=_help("max_batch_tokens"))] = None,
    batch_window_ms: Annotated[float | None, typer.Option(min=0, help=_help("batch_window_ms"))] = None,
    adapter_cache_dir: Annotated[Path | None, typer.Option(help=_help("adapter_cache_dir"))] = None,
    threads: Annotated[int | None, typer.Option(min=1, help=_help("threads"))] = None,
) -> None:
    """Serve the generator service (polyglot.v1.GeneratorService): generation and log-likelihood scoring
    for a base model with LoRA adapters, on transformers (hf) or vLLM."""
    options = {k: v for k, v in locals().items() if k in _F and v is not None}
    try:
        generator_settings = GeneratorSettings(**options)  # options override the environment
    except ValueError as exc:  # pydantic's ValidationError: name the option, exit 2 like typer does
        typer.echo(f"Error: invalid generator option: {exc}", err=True)
        raise typer.Exit(2) from None
    run(
        "generator",
        lambda settings: build(settings, generator_settings),
        host=host,
        port=port,
        metrics_port=metrics_port,
        grace=grace,
    )
