"""Trainer-specific settings, from `POLYGLOT_TRAINER_*` environment variables (CLI options override them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TrainerSettings(BaseSettings):
    """Where jobs are kept, how many run at once, and what happens to running jobs across a restart."""

    model_config = SettingsConfigDict(env_prefix="POLYGLOT_TRAINER_", extra="ignore")

    state_dir: Path = Field(
        Path(".polyglot/trainer"),
        description="Job records (JSON) and worker work directories; a restarted service reloads its jobs from here.",
    )
    max_concurrent_jobs: int = Field(1, ge=1, description="Workers running at once; further jobs wait QUEUED.")
    resume_on_restart: bool = Field(
        True,
        description="Jobs that were running when the service stopped are queued again and resume from their last "
        "checkpoint; when false they are marked FAILED (resubmit with the same idempotency key to resume).",
    )
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept per job in the artifact store (newest first).")
    cancel_grace_seconds: float = Field(
        10.0, ge=0, description="After SIGTERM, a worker gets this long before SIGKILL."
    )
    poll_interval_seconds: float = Field(0.25, gt=0, description="How often worker progress files are read.")
    torch_threads: int | None = Field(None, ge=1, description="torch/OpenMP threads per worker (default: torch's own).")
    worker_python: str | None = Field(None, description="Python interpreter for workers (default: the service's).")

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache"
