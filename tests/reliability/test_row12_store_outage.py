"""Row 12: a 20 s S3 outage during training failed the job and the study: the worker did not retry the store,
and the study's training step turned any failed job into FAILED_PRECONDITION, which the flow never retries.
Reproduced before the fix with a real SeaweedFS stopped (SIGSTOP) for 20 s while the study's own training step
(`flows.steps.train_model`) ran a trainer job on the tiny model: the job ended FAILED with `Unavailable`, and
`train_model` raised FailedPrecondition.

Remedy: the worker opens every store through `services.common.store.retrying`, which retries an operation that
finds the store unreachable with jittered exponential back-off for up to `POLYGLOT_STORE_RETRY_SECONDS`
(default 60 s; each retry is a `store_retry` progress event); and a job that failed for a transient store error
is `Unavailable` to the flow (`flows.steps.train_model`), which the study's task retry resubmits under the same
idempotency key, resuming the job from its last checkpoint. A remedy beyond the table's: the worker's
report mirror and its inputs (dataset, base model, task file) go through the same retries.

    .venv/bin/python -m pytest tests/reliability/test_row12_store_outage.py -q
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows import progress
from flows.config import load_config
from flows.data.build import Built
from flows.data.manifest import DatasetManifest
from flows.steps import train_model
from services.common.errors import TRANSIENT, FailedPrecondition, Unavailable
from services.common.store import open_store
from services.trainer.client import TrainerClient
from tests.fixtures.seaweedfs import S3Server, start_seaweedfs
from tests.fixtures.trainer import guanaco_rows, write_jsonl

REPO = Path(__file__).resolve().parents[2]
OUTAGE_S = 20.0
TRAINING = {"max_steps": 2, "max_length": 32, "per_device_batch_size": 2, "effective_batch_size": 2}


@pytest.fixture(scope="module")
def weed(tmp_path_factory) -> Iterator[tuple[subprocess.Popen, S3Server]]:
    """A SeaweedFS of this module's own, so that stopping it disturbs no other test."""
    proc, server = start_seaweedfs(tmp_path_factory.mktemp("weed-outage"), "row12", f"s3cr3t-{uuid.uuid4().hex}")
    try:
        yield proc, server
    finally:
        if proc.poll() is None:  # a throwaway server: no clean shutdown to wait for
            proc.kill()
            proc.wait()


@pytest.fixture
def study(weed, monkeypatch: pytest.MonkeyPatch, shared_dir: Path):
    """A study on the stopped-and-started S3 (the trainer and its worker reach it through POLYGLOT_S3_*)."""
    _, server = weed
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    # Short timeouts, so that an unanswered request fails in seconds, as a refused connection would.
    for name, value in {"CONNECT_TIMEOUT": "1", "READ_TIMEOUT": "2", "MAX_RETRIES": "0"}.items():
        monkeypatch.setenv(f"POLYGLOT_S3_{name}", value)
    monkeypatch.setenv("POLYGLOT_STORE_RETRY_MAX_WAIT_SECONDS", "2")  # try again soon after the store is back
    store_uri = f"s3://row12-{uuid.uuid4().hex[:12]}/study"
    store = open_store(store_uri)
    data = write_jsonl(store, "datasets/oasst-small/train.jsonl", guanaco_rows(shared_dir, 16))
    overrides = {"artifact_store": store_uri, **{f"training.{k}": str(v) for k, v in TRAINING.items()}}
    cfg = load_config(REPO / "configs" / "smoke.yaml", overrides)
    manifest = DatasetManifest(
        kind="mix", name="oasst-small", key="datasets/oasst-small/test", data="train.jsonl", data_sha256="0" * 64,
        rows=16, counts={}, inputs_sha256="0" * 64, version=1,
    )  # fmt: skip
    return cfg, store, Built(manifest, data, True)


class Outage:
    """A progress sink that stops the S3 server (SIGSTOP: it neither answers nor refuses) once training reports
    its first step, and starts it again `seconds` later (None: when `end` is called)."""

    def __init__(self, proc: subprocess.Popen, seconds: float | None):
        self.proc, self.seconds = proc, seconds
        self.stopped = threading.Event()
        self._timer: threading.Timer | None = None

    def __call__(self, event) -> None:
        if isinstance(event, progress.TrainingProgress) and event.step >= 1 and not self.stopped.is_set():
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.stopped.set()
            if self.seconds is not None:
                self._timer = threading.Timer(self.seconds, self.end)
                self._timer.start()

    def end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        os.kill(self.proc.pid, signal.SIGCONT)


def store_retries(state_dir: Path, job_id: str) -> list[dict]:
    path = state_dir / "jobs" / job_id / "work" / "progress.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in events if e["event"] == "store_retry"]


@pytest.mark.slow
def test_training_rides_out_a_20s_s3_outage_and_the_study_step_completes(
    weed, study, trainer_service, trainer_settings_factory, tiny_llama_dir
):
    proc, _ = weed
    cfg, store, mix = study
    outage, started = Outage(proc, OUTAGE_S), time.monotonic()
    try:
        with trainer_service() as address, TrainerClient(address) as trainer, progress.using(outage):
            model = train_model(cfg, store, trainer, "tiny-llama", str(tiny_llama_dir), mix)
    finally:
        outage.end()
    assert outage.stopped.is_set() and time.monotonic() - started > OUTAGE_S  # the outage hit the training
    assert store_retries(trainer_settings_factory().state_dir, model.job_id)  # and the worker waited it out
    assert open_store(model.adapter_uri).exists("adapter_config.json")


@pytest.mark.slow
def test_an_outage_past_the_retry_window_is_a_retryable_error_for_the_study(
    weed, study, trainer_service, tiny_llama_dir, monkeypatch: pytest.MonkeyPatch
):
    """Past the window the job fails, and the study's step says so with a transient error: the study's task
    retry (flows/study.py RETRY) resubmits under the same idempotency key, and the trainer resumes the job
    from its last checkpoint (tests/integration/test_trainer_resume.py)."""
    proc, _ = weed
    cfg, store, mix = study
    monkeypatch.setenv("POLYGLOT_STORE_RETRY_SECONDS", "1")  # read by the worker the job starts
    outage = Outage(proc, None)
    try:
        with (
            trainer_service() as address,
            TrainerClient(address) as trainer,
            progress.using(outage),
            pytest.raises((Unavailable, FailedPrecondition)) as failed,
        ):
            train_model(cfg, store, trainer, "tiny-llama", str(tiny_llama_dir), mix)
    finally:
        outage.end()
    assert outage.stopped.is_set() and "Unavailable" in str(failed.value)  # the store outage failed the job
    assert isinstance(failed.value, TRANSIENT), failed.value  # and the study's task retry takes it again
