"""Process entry of the trainer service: `polyglot serve trainer [--state-dir PATH] [--max-concurrent-jobs N]`.

Settings come from the environment (`POLYGLOT_TRAINER_*`, see `services.trainer.settings.TrainerSettings`);
the CLI options override them. Heavy imports stay inside `build`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.common.serve import Grace, Host, MetricsPort, Port, run
from services.common.server import Registration
from services.common.settings import ServerSettings
from services.trainer.settings import TrainerSettings


def make_build(trainer_settings: TrainerSettings | None = None):
    """A `build` for the runtime: starts the job manager (reloading persisted jobs) on the server's loop."""

    async def build(settings: ServerSettings) -> list[Registration]:
        from polyglot.v1 import trainer_pb2_grpc

        from services.trainer.jobs import JobManager
        from services.trainer.servicer import TrainerServicer

        manager = JobManager(trainer_settings or TrainerSettings())
        await manager.start()
        return [
            Registration(
                TrainerServicer(manager),
                trainer_pb2_grpc.add_TrainerServiceServicer_to_server,
                "polyglot.v1.TrainerService",
            )
        ]

    return build


build = make_build()

StateDir = Annotated[
    Path | None,
    typer.Option(help="Job records and worker files; jobs survive restarts here (default .polyglot/trainer)."),
]
MaxJobs = Annotated[int | None, typer.Option(min=1, help="Training jobs running at once (default 1).")]
TorchThreads = Annotated[int | None, typer.Option(min=1, help="torch threads per worker (default: torch's own).")]
ResumeOnRestart = Annotated[
    bool | None,
    typer.Option(
        "--resume-on-restart/--fail-on-restart",
        help="Jobs running when the service stopped: resume them on start (default) or mark them FAILED.",
    ),
]


def serve(
    host: Host = None,
    port: Port = None,
    metrics_port: MetricsPort = None,
    grace: Grace = None,
    state_dir: StateDir = None,
    max_concurrent_jobs: MaxJobs = None,
    torch_threads: TorchThreads = None,
    resume_on_restart: ResumeOnRestart = None,
) -> None:
    """Serve the trainer service (polyglot.v1.TrainerService): LoRA jobs with TRL, the paper's recipe by default."""
    overrides = {
        "state_dir": state_dir,
        "max_concurrent_jobs": max_concurrent_jobs,
        "torch_threads": torch_threads,
        "resume_on_restart": resume_on_restart,
    }
    settings = TrainerSettings(**{k: v for k, v in overrides.items() if v is not None})
    run("trainer", make_build(settings), host=host, port=port, metrics_port=metrics_port, grace=grace)
