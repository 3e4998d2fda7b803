"""The trainer's own data: job specs, jobs, progress, and what the service hands a worker.

Plain pydantic (no gRPC): the servicer maps these to and from `polyglot.v1.trainer_pb2`, and the job
store persists them as JSON, so a job survives a service restart.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from services.common.config import config_hash
from services.trainer.recipe import TrainingRecipe


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobState(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class Progress(BaseModel):
    """What a worker last reported. A diverged run reports a NaN or infinite loss: in a job's JSON record it is
    written as the string `"nan"`/`"inf"` (strict JSON has no such number) and read back as the float."""

    step: int = 0
    total_steps: int = 0
    loss: float = 0.0
    learning_rate: float = 0.0
    tokens_per_second: float = 0.0
    eta_seconds: float = 0.0
    epoch: float = 0.0

    @field_serializer("*", when_used="json")
    def _non_finite_as_text(self, value: Any) -> Any:
        return str(value) if isinstance(value, float) and not math.isfinite(value) else value


class Artifact(BaseModel):
    uri: str
    sha256: str = ""


class JobSpec(BaseModel):
    """What to train. Equal specs train equal adapters (given the same code and libraries)."""

    model_config = ConfigDict(frozen=True)

    base_model: str
    dataset_uri: str
    output_uri: str
    recipe: TrainingRecipe = Field(default_factory=TrainingRecipe)
    num_devices: int = Field(1, ge=1)
    labels: dict[str, str] = Field(default_factory=dict)

    def fingerprint(self) -> str:
        """Identity of the training itself (labels excluded): a checkpoint is resumable only under it."""
        return config_hash(self.model_dump(mode="json", exclude={"labels"}))


class Job(BaseModel):
    id: str
    idempotency_key: str
    spec: JobSpec
    state: JobState = JobState.QUEUED
    progress: Progress = Field(default_factory=Progress)
    outputs: dict[str, Artifact] = Field(default_factory=dict)
    error: str = ""
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Service-private bookkeeping (not in the gRPC message).
    worker_pid: int | None = None
    dataset: dict[str, Any] = Field(default_factory=dict, description="DatasetManifest recorded at submit.")
    wall_seconds: float = Field(0.0, description="Worker wall time summed over the finished attempts.")


class WorkerTask(BaseModel):
    """Everything a worker process needs, written as `task.json` in its work directory."""

    job_id: str
    attempt: int
    spec: JobSpec
    fingerprint: str
    work_dir: str
    parent_pid: int
    keep_checkpoints: int = 2
    torch_threads: int | None = None
    cache_dir: str
    dataset: dict[str, Any] = Field(description="The DatasetManifest recorded at submit time.")
    prior_wall_seconds: float = 0.0
    created_at: datetime

    @property
    def dataset_sha256(self) -> str:
        return str(self.dataset.get("sha256", ""))
