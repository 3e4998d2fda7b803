"""How the service starts a worker process.

One device: `python -m services.trainer.worker <work_dir>`.
Several GPUs (`spec.num_devices > 1`): the same module under `accelerate launch --multi_gpu --num_processes N`,
which starts one process per GPU (torchrun underneath) and lets TRL's Trainer run data-parallel; every rank
reads the same `task.json`, rank 0 alone reports progress and writes checkpoints and outputs. The effective
batch stays `effective_batch_size` (gradient accumulation shrinks by N). This path cannot run on the CPU-only
development machines; its command line is unit-tested.
"""

from __future__ import annotations

import sys
from pathlib import Path

WORKER_MODULE = "services.trainer.worker"


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
