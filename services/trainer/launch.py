"""How the service starts a job attempt: launchers, chosen by `POLYGLOT_TRAINER_LAUNCHER`.

- `local` (default): a worker process of this service, `python -m services.trainer.worker <work_dir>`, on
  its own slice of the service's devices (`devices.py`): some GPUs through `CUDA_VISIBLE_DEVICES`, or a
  share of the CPU threads. Several GPUs (`spec.num_devices > 1`): the same module under
  `accelerate launch --multi_gpu --num_processes N`, one process per GPU (torchrun underneath), TRL's
  Trainer data-parallel; every rank reads the same `task.json`, rank 0 alone reports progress and writes
  checkpoints and outputs. The effective batch stays `effective_batch_size` (gradient accumulation shrinks
  by N). This path cannot run on the CPU-only development machines; its command line is unit-tested.
- `kubernetes`: a Kubernetes Job per attempt, with its own GPU request (`k8s_launcher.py`), for clusters
  where one pod cannot hold every GPU. Its workers outlive the service: a restarted trainer re-attaches.

Both report through the same files in the job's work directory (`progress.jsonl`, `result.json`,
`error.json`, see `worker.py`): the local worker writes them there, a Kubernetes worker writes them to the
artifact store and its handle copies them back on every poll.
"""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.common.registry import Registry

if TYPE_CHECKING:
    from services.trainer.schema import Job, WorkerTask
    from services.trainer.settings import TrainerSettings

WORKER_MODULE = "services.trainer.worker"
REPO_ROOT = Path(__file__).resolve().parents[2]


def worker_command(
    work_dir: str | Path, *, num_devices: int = 1, python: str | None = None, main_port: int | None = None
) -> list[str]:
    python = python or sys.executable
    if num_devices <= 1:
        return [python, "-m", WORKER_MODULE, str(work_dir)]
    command = [
        python,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(num_devices),
        "--num_machines",
        "1",
    ]
    if main_port:
        command += ["--main_process_port", str(main_port)]
    return [*command, "-m", WORKER_MODULE, str(work_dir)]


class WorkerHandle(abc.ABC):
    """One running attempt, as the job manager sees it."""

    pid: int | None = None  # a local process (recorded in job.json so a restart can stop an orphan)
    name: str = ""  # for logs: a pid or a Kubernetes Job name

    @abc.abstractmethod
    async def poll(self) -> int | None:
        """Bring the report files up to date; the exit code once the attempt has ended (negative: killed by
        that signal), else None."""

    @abc.abstractmethod
    async def terminate(self, grace_seconds: float) -> None:
        """Ask the attempt to stop, and make sure it is gone after `grace_seconds`."""

    @abc.abstractmethod
    async def kill(self) -> None:
        """Stop it now."""


class Launcher(abc.ABC):
    """Starts attempts. One instance per service, created from the settings."""

    # True when workers outlive the service: a restart re-attaches to them instead of starting new ones.
    detached: bool = False
    # Polls of a running attempt are at least this far apart (an API server is no local file).
    min_poll_seconds: float = 0.0

    def __init__(self, settings: TrainerSettings):
        self.settings = settings

    async def prepare(self) -> None:
        """Slow set-up (finding the GPUs, loading an API configuration), once, before the first job."""
        return None

    def gpu_limit(self) -> int | None:
        """The most GPUs one job may ask for, or None when this launcher cannot tell."""
        return None

    def reserve(self, job: Job) -> Any | None:
        """The resources `job` runs on, or None while they are busy (the job keeps waiting)."""
        return True

    def release(self, job_id: str) -> None:
        """`job_id` ended: its reservation is free again."""
        return None

    def adapt(self, task: WorkerTask, reservation: Any) -> WorkerTask:
        """The task as this launcher's worker sees it (its threads, its paths)."""
        return task

    @abc.abstractmethod
    async def start(self, job: Job, task: WorkerTask, work: Path, log_path: Path, reservation: Any) -> WorkerHandle:
        """Start the attempt `task` (already written to `work/task.json`)."""

    async def attach(self, job: Job, work: Path) -> WorkerHandle:
        """The running attempt of `job`, after a restart (detached launchers only)."""
        raise NotImplementedError


LAUNCHERS: Registry[type[Launcher]] = Registry("launcher", base=Launcher)
LAUNCHERS.register_lazy("kubernetes", "services.trainer.k8s_launcher:KubernetesLauncher")


def kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class ProcessHandle(WorkerHandle):
    def __init__(self, proc: subprocess.Popen):
        self.proc, self.pid, self.name = proc, proc.pid, f"pid {proc.pid}"

    async def poll(self) -> int | None:
        return self.proc.poll()

    async def terminate(self, grace_seconds: float) -> None:
        import asyncio

        kill_group(self.proc.pid, signal.SIGTERM)
        asyncio.get_running_loop().call_later(
            grace_seconds, lambda: self.proc.poll() is None and kill_group(self.proc.pid, signal.SIGKILL)
        )

    async def kill(self) -> None:
        kill_group(self.proc.pid, signal.SIGKILL)


@LAUNCHERS.register("local")
class LocalLauncher(Launcher):
    """Worker processes of this service, each on its own devices (a `devices.DevicePool` allocation)."""

    def __init__(self, settings: TrainerSettings, *, cuda_devices=None):
        super().__init__(settings)
        self._cuda_devices = cuda_devices or cuda_device_count
        self.pool = None

    async def prepare(self) -> None:
        import asyncio

        from services.trainer.devices import build_pool

        # Counting GPUs imports torch: on a CPU-only setting there is nothing to count.
        count = 0 if self.settings.device == "cpu" else await asyncio.to_thread(self._cuda_devices)
        self.pool = build_pool(
            device=self.settings.device,
            cuda_device_count=count,
            max_concurrent_jobs=self.settings.max_concurrent_jobs,
            cpu_threads=self.settings.cpu_threads,
            torch_threads=self.settings.torch_threads,
        )

    def gpu_limit(self) -> int | None:
        return len(self.pool.gpus) if self.pool else None

    def reserve(self, job: Job):
        return self.pool.acquire(job.id, job.spec.num_devices)

    def release(self, job_id: str) -> None:
        self.pool.release(job_id)

    def adapt(self, task: WorkerTask, reservation) -> WorkerTask:
        return task.model_copy(update={"torch_threads": reservation.threads})

    async def start(self, job: Job, task: WorkerTask, work: Path, log_path: Path, reservation) -> WorkerHandle:
        command = worker_command(work, num_devices=job.spec.num_devices, python=self.settings.worker_python)
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                command,
                cwd=work,
                env=self.worker_env(reservation.env()),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: cancel reaches accelerate's children too
            )
        return ProcessHandle(proc)

    def worker_env(self, devices: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", HF_HUB_DISABLE_TELEMETRY="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        env.update(devices)
        return env


def cuda_device_count() -> int:
    """The GPUs torch sees; 0 without importing torch where no NVIDIA driver is loaded (CPU-only machines)."""
    if not Path("/proc/driver/nvidia").exists() and sys.platform.startswith("linux"):
        return 0
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count()


def build_launcher(settings: TrainerSettings, **kwargs: Any) -> Launcher:
    return LAUNCHERS.get(settings.launcher)(settings, **kwargs)
