"""Trainer-specific settings, from `POLYGLOT_TRAINER_*` environment variables (CLI options override them)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TrainerSettings(BaseSettings):
    """Where jobs are kept, how many run at once and on what, and what happens to running jobs across a restart."""

    model_config = SettingsConfigDict(env_prefix="POLYGLOT_TRAINER_", extra="ignore")

    state_dir: Path = Field(
        Path(".polyglot/trainer"),
        description="Job records (JSON) and worker work directories; a restarted service reloads its jobs from here.",
    )
    max_concurrent_jobs: int = Field(
        1, ge=1, description="Jobs running at once, each on its own devices; further jobs wait QUEUED (FIFO)."
    )
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
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="torch/OpenMP threads per CPU job (default: the CPU budget divided by max_concurrent_jobs).",
    )
    worker_python: str | None = Field(None, description="Python interpreter for workers (default: the service's).")
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="What workers train on: auto = the GPUs when this machine has any, else the CPU."
    )
    cpu_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads shared out among CPU jobs, each taking its own (default: the CPUs this process "
        "may use).",
    )
    launcher: Literal["local", "kubernetes"] = Field(
        "local",
        description="How a job attempt runs: local = a worker process of this service on a slice of its devices; "
        "kubernetes = a Kubernetes Job of its own (services/trainer/k8s_launcher.py).",
    )
    k8s_api: str | None = Field(
        None,
        description="Kubernetes API server URL (default: the in-cluster service account, else ~/.kube/config).",
    )
    k8s_namespace: str | None = Field(
        None, description="Namespace of the training Jobs (default: this pod's own, else `default`)."
    )
    k8s_image: str | None = Field(
        None, description="Image of the training Jobs (default: this pod's own image, read from the API)."
    )
    k8s_service_account: str = Field("trainer-job", description="ServiceAccount the training pods run as.")
    k8s_backoff_limit: int = Field(
        0, ge=0, description="Pod retries inside one attempt (each retry resumes from the latest checkpoint)."
    )
    k8s_ttl_seconds_after_finished: int = Field(
        86400, ge=0, description="Kubernetes deletes a finished training Job this long after it ends."
    )
    k8s_cpu: str = Field("8", description="CPU request and limit of a training pod.")
    k8s_memory: str = Field("64Gi", description="Memory request and limit of a training pod.")
    k8s_env_from: list[str] = Field(
        ["polyglot-env"], description="ConfigMaps whose keys become the training pods' environment."
    )
    k8s_secret_env: dict[str, str] = Field(
        {
            "POLYGLOT_S3_ACCESS_KEY": "polyglot-s3/access-key",
            "POLYGLOT_S3_SECRET_KEY": "polyglot-s3/secret-key",
            "HF_TOKEN": "polyglot-hf/token?",
        },
        description="Environment of the training pods from Secrets: NAME -> secret/key (a trailing ? = optional).",
    )
    k8s_node_selector: dict[str, str] = Field(
        {}, description="Node labels a training pod needs (GPU jobs also tolerate the nvidia.com/gpu taint)."
    )

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache"
