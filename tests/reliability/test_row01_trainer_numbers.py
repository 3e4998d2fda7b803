"""Row 1: `SubmitJob` with `learning_rate`, `weight_decay` or `max_grad_norm` = inf passed validation, failed
while saving the job (INTERNAL: strict JSON has no inf), left a phantom QUEUED job, and the scheduler task
died on it: every later job stayed QUEUED while health said SERVING. Reproduced before the fix against the
real trainer service: the first submit answered INTERNAL, and `ListJobs` then showed the phantom job.

Remedy, validation half (services/common/config/types.py): every config `Section` refuses non-finite
floats (`allow_inf_nan=False`), so the recipe fields are refused at submit as INVALID_ARGUMENT naming them,
before any job exists. Scheduler half (services/trainer/jobs.py): the scheduler loop survives any exception
while launching a job — the job is marked FAILED with the reason, and the queue moves on. The second test
provokes that with a full disk under the job's work directory, the one fault left that a launch can hit.

    .venv/bin/python -m pytest tests/reliability/test_row01_trainer_numbers.py -q
"""

from __future__ import annotations

import errno
import math
import os

import pytest

from services.common import errors
from services.trainer.client import TrainerClient
from services.trainer.schema import Job, JobState
from tests.fixtures.trainer import TINY_RECIPE
from tests.reliability.faults import FullDisk

NON_FINITE_FIELDS = ["learning_rate", "weight_decay", "max_grad_norm", "warmup_ratio", "lora_dropout"]


@pytest.fixture
def good_job(tiny_llama_dir, oasst_dataset_uri, tmp_path):
    """Submit arguments of a job that validates; each call gets its own output prefix."""
    count = iter(range(100))
    return lambda: {
        "base_model": str(tiny_llama_dir),
        "dataset_uri": oasst_dataset_uri,
        "output_uri": (tmp_path / f"out-{next(count)}").as_uri(),
        "training": TINY_RECIPE,
    }


def reaches_running(client: TrainerClient, job_id: str) -> Job:
    """The job once it leaves QUEUED (RUNNING, or FAILED if it could not start); cancels it if it runs."""
    for event in client.watch(job_id, timeout=30):
        if isinstance(event, Job) and event.state != JobState.QUEUED:
            if event.state == JobState.RUNNING:
                client.cancel(job_id)
            return event
    raise AssertionError(f"{job_id} never left QUEUED")


def test_non_finite_hyperparameters_are_refused_and_the_queue_keeps_moving(trainer_service, good_job):
    with trainer_service() as address, TrainerClient(address) as client:
        for name in NON_FINITE_FIELDS:
            for value in (math.inf, -math.inf, math.nan):
                with pytest.raises(errors.InvalidArgument) as info:
                    client.submit(**{**good_job(), "training": {**TINY_RECIPE, name: value}}, idempotency_key=name)
                assert str(info.value).startswith(f"spec.hyperparameters.{name}: "), (name, value)
        assert client.list() == []  # no phantom job
        job = client.submit(**good_job())
        assert reaches_running(client, job.id).state == JobState.RUNNING
        assert client.health() == "SERVING"


def test_the_scheduler_survives_a_launch_that_fails(trainer_service, good_job, monkeypatch):
    """A launch that raises (here: no space left for the worker's `task.json`) fails that job with the
    reason; the scheduler lives on and starts the next job."""
    import services.trainer.jobs as jobs

    disk = FullDisk(monkeypatch, jobs, "task.json")
    with trainer_service() as address, TrainerClient(address) as client:
        first = client.submit(**good_job())
        failed = reaches_running(client, first.id)
        assert failed.state == JobState.FAILED
        assert os.strerror(errno.ENOSPC) in failed.error
        disk.on = False
        second = client.submit(**good_job())
        assert reaches_running(client, second.id).state == JobState.RUNNING
        assert client.health() == "SERVING"
