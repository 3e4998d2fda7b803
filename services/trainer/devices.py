"""Which devices a local job runs on: disjoint GPU slices, or a share of the CPU threads.

The service hands each running job its own devices, so `max_concurrent_jobs` jobs can train side by side
without fighting over them:

- on GPUs, a job asking for `spec.num_devices` GPUs gets that many of the service's own (its
  `CUDA_VISIBLE_DEVICES`, else all it sees), passed to the worker as `CUDA_VISIBLE_DEVICES`;
- on the CPU, a job gets `torch_threads` threads (default: the CPU budget / `max_concurrent_jobs`) out of
  the budget (`cpu_threads`, default the CPUs this process may use), set as torch's thread count and
  `OMP_NUM_THREADS`.

A job whose devices are not free waits; the queue stays first in, first out (the head is never overtaken,
so a job wanting many GPUs is not starved by small ones).

    >>> pool = DevicePool(kind="cpu", gpus=(), cpu_threads=2, threads_per_job=1)
    >>> a, b = pool.acquire("a", 1), pool.acquire("b", 1)
    >>> (a.threads, b.threads, pool.acquire("c", 1))
    (1, 1, None)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from services.common.cpus import usable_cpus

Kind = Literal["cuda", "cpu"]


@dataclass(frozen=True)
class Allocation:
    """The devices of one running job."""

    kind: Kind
    gpus: tuple[str, ...] = ()
    threads: int = 1

    def env(self) -> dict[str, str]:
        """What the worker process is started with."""
        env = {
            "POLYGLOT_TRAINER_DEVICE": self.kind,
            "OMP_NUM_THREADS": str(self.threads),
            "MKL_NUM_THREADS": str(self.threads),
        }
        # An empty CUDA_VISIBLE_DEVICES hides every GPU: a CPU job never grabs one by accident.
        env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return env


@dataclass
class DevicePool:
    """Hands out disjoint allocations: `acquire` when a job starts, `release` when it ends."""

    kind: Kind
    gpus: tuple[str, ...]
    cpu_threads: int
    threads_per_job: int
    _taken: dict[str, Allocation] = field(default_factory=dict)

    def free_gpus(self) -> list[str]:
        used = {g for a in self._taken.values() for g in a.gpus}
        return [g for g in self.gpus if g not in used]

    def free_threads(self) -> int:
        return self.cpu_threads - sum(a.threads for a in self._taken.values() if a.kind == "cpu")

    def acquire(self, job_id: str, num_devices: int) -> Allocation | None:
        """The devices for `job_id`, or None while they are in use by other jobs."""
        if job_id in self._taken:
            return self._taken[job_id]
        if self.kind == "cuda":
            free = self.free_gpus()
            if len(free) < num_devices:
                return None
            # GPU jobs still get a share of the CPU threads (data loading, tokenisation), never all of them.
            allocation = Allocation("cuda", tuple(free[:num_devices]), self.threads_per_job)
        else:
            threads = min(self.threads_per_job, self.cpu_threads)  # more than the budget could never start
            if self.free_threads() < threads:
                return None
            allocation = Allocation("cpu", (), threads)
        self._taken[job_id] = allocation
        return allocation

    def release(self, job_id: str) -> None:
        self._taken.pop(job_id, None)


def visible_gpus(cuda_device_count: int) -> tuple[str, ...]:
    """The GPUs this process may hand out: its own CUDA_VISIBLE_DEVICES entries (indices or UUIDs), else
    0..count-1."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return tuple(g.strip() for g in given.split(",") if g.strip())[:cuda_device_count]
    return tuple(str(i) for i in range(cuda_device_count))


def resolve_kind(device: str, cuda_device_count: int) -> Kind:
    """`auto` is the GPUs when there are any; asking for `cuda` on a machine without one is an error."""
    if device == "cpu":
        return "cpu"
    if cuda_device_count > 0:
        return "cuda"
    if device == "cuda":
        raise RuntimeError("device is cuda but this machine has no GPU visible to torch")
    return "cpu"


def build_pool(
    *, device: str, cuda_device_count: int, max_concurrent_jobs: int, cpu_threads: int | None, torch_threads: int | None
) -> DevicePool:
    kind = resolve_kind(device, cuda_device_count)
    budget = cpu_threads or usable_cpus()
    per_job = torch_threads or max(1, budget // max_concurrent_jobs)
    gpus = visible_gpus(cuda_device_count) if kind == "cuda" else ()
    return DevicePool(kind=kind, gpus=gpus, cpu_threads=budget, threads_per_job=per_job)
