"""Process entry of the judge service: `polyglot serve judge [--provider NAME] [--model NAME] [--base-url URL] ...`.

Heavy imports stay inside `build`. The API key is read from the environment only (OPENAI_API_KEY or
POLYGLOT_JUDGE_API_KEY), never from the command line, where `ps` would show it.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

import typer
from pydantic import ValidationError

from services.common.serve import Grace, Host, MetricsPort, Port, console, run
from services.common.server import Registration
from services.common.settings import ServerSettings
from services.judge.settings import JudgeSettings


def build(settings: ServerSettings, judge: JudgeSettings | None = None) -> list[Registration]:
    from polyglot.v1 import judge_pb2_grpc

    from services.common.store import open_store
    from services.judge.core import Judge
    from services.judge.servicer import JudgeServicer

    judge = judge or JudgeSettings()
    if judge.provider == "openai":
        import openai  # noqa: F401  (seconds to import: pay it at start-up, not in the first call)
    store = open_store(_store_location(judge.store_uri or settings.store_uri))
    identifier = None
    if judge.lid_address:
        from services.judge.lid_gate import LidServiceIdentifier

        identifier = LidServiceIdentifier(judge.lid_address, batch_size=judge.lid_batch_size)
    return [
        Registration(
            JudgeServicer(Judge(judge, store, identifier)),
            judge_pb2_grpc.add_JudgeServiceServicer_to_server,
            "polyglot.v1.JudgeService",
        )
    ]


def _store_location(uri: str) -> str:
    """`file://./dir` (the runtime's default, a relative path) as the plain path the store accepts."""
    if uri.startswith("file://") and not uri.startswith("file:///"):
        return uri.removeprefix("file://")
    return uri


ProviderOpt = Annotated[
    str | None, typer.Option(help="Default provider: openai or generator (env POLYGLOT_JUDGE_PROVIDER).")
]
ModelOpt = Annotated[str | None, typer.Option(help="Default judge model (env POLYGLOT_JUDGE_MODEL; gpt-3.5-turbo).")]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (env POLYGLOT_JUDGE_BASE_URL)."),
]
LidOpt = Annotated[
    str | None, typer.Option(help="lid service host:port for the language gate (env POLYGLOT_JUDGE_LID_ADDRESS).")
]
GeneratorOpt = Annotated[
    str | None,
    typer.Option(help="generator host:port for provider `generator` (env POLYGLOT_JUDGE_GENERATOR_ADDRESS)."),
]
ConcurrencyOpt = Annotated[
    int | None, typer.Option(min=1, help="Requests in flight per provider (env POLYGLOT_JUDGE_CONCURRENCY; 16).")
]


def serve(
    host: Host = None,
    port: Port = None,
    metrics_port: MetricsPort = None,
    grace: Grace = None,
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    lid_address: LidOpt = None,
    generator_address: GeneratorOpt = None,
    concurrency: ConcurrencyOpt = None,
) -> None:
    """Serve the judge service (polyglot.v1.JudgeService): LLM grading with the language gate, and translation."""
    overrides = {
        "provider": provider,
        "model": model,
        "base_url": base_url,
        "lid_address": lid_address,
        "generator_address": generator_address,
        "concurrency": concurrency,
    }
    try:
        judge = JudgeSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"POLYGLOT_JUDGE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        console.print(f"[bold red]error:[/] judge: {problems}")
        raise typer.Exit(2) from None
    run("judge", partial(build, judge=judge), host=host, port=port, metrics_port=metrics_port, grace=grace)
