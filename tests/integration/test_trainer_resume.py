"""Crash, restart and cancel: a killed worker's job resumes from its last checkpoint in S3 (real SeaweedFS)
when resubmitted with the same key; a stopped service re-queues its running job; cancel stops workers.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from services.common.store import open_store
from services.trainer.client import TrainerClient
from services.trainer.schema import JobState, Progress
from tests.fixtures.processes import alive, wait_until
from tests.fixtures.trainer import TINY_RECIPE, guanaco_rows, write_jsonl

pytestmark = pytest.mark.slow


def _record(tmp_path: Path, job_id: str) -> dict:
    return json.loads((tmp_path / "trainer-state" / "jobs" / job_id / "job.json").read_text())



def test_a_killed_worker_resumes_from_its_s3_checkpoint_when_resubmitted(
    trainer_service, s3_server, s3_bucket, monkeypatch, tiny_llama_dir, shared_dir, tmp_path
):
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)  # the service and its workers reach SeaweedFS through these
    store = open_store(f"s3://{s3_bucket}/trainer")
    submit = {
        "base_model": str(tiny_llama_dir),
        "dataset_uri": write_jsonl(store, "datasets/oasst/train.jsonl", guanaco_rows(shared_dir, 64)),
        "output_uri": store.uri("models/resume"),
        "idempotency_key": "resume-me",
        "training": {**TINY_RECIPE, "max_steps": 18, "checkpoint_every": 6},
    }
    with trainer_service() as address, TrainerClient(address) as client:
        job = client.submit(**submit)
        pid = wait_until(lambda: _record(tmp_path, job.id)["worker_pid"], what="the worker's pid")
        for event in client.watch(job.id, timeout=240):
            # Step 7 is logged after checkpoint 6 is in S3 (at each step the trainer logs, then saves).
            if isinstance(event, Progress) and event.step >= 7:
                os.kill(pid, signal.SIGKILL)
                break
        failed = client.wait(job.id, timeout=60)
        assert failed.state == JobState.FAILED and "SIGKILL" in failed.error
        assert client.get(job.id).state == JobState.FAILED  # the service itself is fine
    checkpoint_step = store.get_json("models/resume/checkpoints/latest.json")["step"]
    assert 6 <= checkpoint_step < 18

    with trainer_service() as address, TrainerClient(address) as client:  # a fresh service, same state dir
        assert client.get(job.id).state == JobState.FAILED
        again = client.submit(**submit)
        assert again.id == job.id
        events = list(client.watch(job.id, timeout=240))
        jobs = client.list()

    final = events[-1]
    assert final.state == JobState.SUCCEEDED, final.error
    assert final.attempts == 2 and final.progress.step == 18
    steps = [e.step for e in events if isinstance(e, Progress)]
    assert steps[0] == checkpoint_step and steps[-1] == 18  # the step count continues from the checkpoint
    assert [j.id for j in jobs] == [job.id]  # no duplicate job
    card = store.get_json("models/resume/card.json")
    assert card["attempts"] == 2 and card["resumed_from_step"] == checkpoint_step
    assert [p["step"] for p in card["loss_curve"]][-1] == 18 and card["loss_curve"][0]["step"] == 1
    assert final.outputs["adapter"].uri == store.uri("models/resume/adapter")
    assert store.exists("models/resume/adapter/adapter_model.safetensors")
    kept = {info.key.split("/")[3] for info in store.list("models/resume/checkpoints/checkpoint-")}
    assert len(kept) <= 2  # older checkpoints are pruned


def test_stop_requeues_a_running_job_and_cancel_stops_running_and_queued_jobs(
    trainer_service, tiny_llama_dir, oasst_dataset_uri, tmp_path
):
    def submit(client, name):
        return client.submit(
            base_model=str(tiny_llama_dir),
            dataset_uri=oasst_dataset_uri,
            output_uri=(tmp_path / name).as_uri(),
            idempotency_key=name,
            training={**TINY_RECIPE, "max_steps": 10_000},
        )

    with trainer_service(max_concurrent_jobs=1) as address, TrainerClient(address) as client:
        first, second = submit(client, "first"), submit(client, "second")
        wait_until(lambda: client.get(first.id).state == JobState.RUNNING, what="first running")
        assert client.get(second.id).state == JobState.QUEUED  # one job at a time
        pid = wait_until(lambda: _record(tmp_path, first.id)["worker_pid"], what="worker pid")
    # The service stopped: its worker is gone and the job waits to resume.
    assert not alive(pid)
    record = _record(tmp_path, first.id)
    assert record["state"] == "QUEUED" and "service stopped" in record["error"]

    with trainer_service(max_concurrent_jobs=1) as address, TrainerClient(address) as client:
        wait_until(lambda: client.get(first.id).attempts == 2, what="first relaunched")
        pid = wait_until(lambda: _record(tmp_path, first.id)["worker_pid"], what="worker pid")
        assert client.cancel(second.id).state == JobState.CANCELLED
        cancelled = client.cancel(first.id)
        assert cancelled.state == JobState.CANCELLED and cancelled.finished_at is not None
        assert not alive(pid)
        assert {j.state for j in client.list()} == {JobState.CANCELLED}
