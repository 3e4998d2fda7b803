"""Concurrent training and the Kubernetes-Job launcher, with real workers (tiny Llama, CPU).

- `polyglot-serve trainer` as a real process with max_concurrent_jobs=2, one CPU thread per job: two jobs
  run at the same time; SIGKILL the trainer while both train, start it again, and both resume from their
  checkpoints (second attempt, step count continuing) and finish with adapters.
- The `kubernetes` launcher against a fake API server (tests/unit/trainer/fake_k8s.py) whose "kubelet"
  runs each created Job's container command here, as a pod would: the job trains in it, reports through
  the artifact store, and a trainer restarted mid-run re-attaches to the Job instead of starting another.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from services.common.client import wait_for_health
from services.common.errors import Unavailable
from services.common.store import open_store
from services.trainer.client import TrainerClient
from services.trainer.k8s_launcher import JOB_LABEL, POD_WORK_DIR, job_name
from services.trainer.schema import JobState
from tests.fixtures.processes import alive, wait_until
from tests.fixtures.seaweedfs import free_ports
from tests.fixtures.trainer import TINY_RECIPE
from tests.unit.trainer.fake_k8s import FakeKubernetes

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _record(state_dir: Path, job_id: str) -> dict:
    return json.loads((state_dir / "jobs" / job_id / "job.json").read_text())


def _events(state_dir: Path, job_id: str) -> list[dict]:
    path = state_dir / "jobs" / job_id / "work" / "progress.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _serve(state_dir: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "POLYGLOT_TRAINER_STATE_DIR": str(state_dir),
        "POLYGLOT_TRAINER_MAX_CONCURRENT_JOBS": "2",
        "POLYGLOT_TRAINER_DEVICE": "cpu",
        "POLYGLOT_TRAINER_CPU_THREADS": "2",
        "POLYGLOT_TRAINER_TORCH_THREADS": "1",
        "POLYGLOT_TRAINER_POLL_INTERVAL_SECONDS": "0.1",
        # The tests' datasets and outputs live under the temporary directory: the trainer may use it.
        "POLYGLOT_TRAINER_FILE_ROOTS": json.dumps([tempfile.gettempdir(), str(state_dir)]),
    }
    cmd = [sys.executable, "-m", "services.common.serve", "trainer", "--port", str(port), "--metrics-port", "0"]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"

    def serving() -> bool:
        assert proc.poll() is None, f"the trainer exited with {proc.returncode}"
        try:
            wait_for_health(address, timeout=1)
        except Unavailable:
            return False
        return True

    wait_until(serving, timeout=60, what="the trainer to serve")
    return proc


def test_two_jobs_train_at_once_and_both_resume_after_the_trainer_is_killed(
    tiny_llama_dir, oasst_dataset_uri, tmp_path
):
    state, (port,) = tmp_path / "state", free_ports(1)
    # Enough steps that the kill lands mid-run even on a fast, quiet machine.
    steps = 16
    recipe = {**TINY_RECIPE, "max_steps": steps, "checkpoint_every": 2}
    submits = [
        {
            "base_model": str(tiny_llama_dir),
            "dataset_uri": oasst_dataset_uri,
            "output_uri": (tmp_path / name).as_uri(),
            "idempotency_key": name,
            "training": recipe,
        }
        for name in ("mix-a", "mix-b")
    ]
    trainer = _serve(state, port)
    try:
        with TrainerClient(f"127.0.0.1:{port}") as client:
            jobs = [client.submit(**s) for s in submits]
        # Both train at once, each with a checkpoint in the store.
        pids = wait_until(
            lambda: (
                all(any(e["event"] == "checkpoint" for e in _events(state, j.id)) for j in jobs)
                and [_record(state, j.id)["worker_pid"] for j in jobs]
            ),
            what="both jobs past their first checkpoint",
        )
        records = [_record(state, j.id) for j in jobs]
        assert [r["state"] for r in records] == ["RUNNING", "RUNNING"] and all(alive(p) for p in pids)
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(timeout=30)
        wait_until(lambda: not any(alive(p) for p in pids), timeout=30, what="the orphaned workers to exit")

        trainer = _serve(state, port)  # the same state dir: both jobs resume
        with TrainerClient(f"127.0.0.1:{port}") as client:
            finals = [client.wait(j.id, timeout=240) for j in jobs]
    finally:
        trainer.send_signal(signal.SIGTERM)
        trainer.wait(timeout=60)

    intervals = []
    for job, final in zip(jobs, finals, strict=True):
        assert final.state == JobState.SUCCEEDED, final.error
        assert final.attempts == 2 and final.progress.step == steps
        events = _events(state, job.id)  # the second attempt's
        start, done = events[0], events[-1]
        assert start["event"] == "start" and start["attempt"] == 2
        assert start["step"] in range(2, steps, 2)  # resumed from a checkpoint
        assert done["event"] == "done" and done["step"] == steps
        intervals.append((start["time"], done["time"]))
        card = open_store(final.outputs["card"].uri.rsplit("/", 1)[0]).get_json("card.json")
        assert card["attempts"] == 2 and card["resumed_from_step"] == start["step"]
        assert card["devices"] == {"kind": "cpu", "count": 1, "bf16": False, "torch_threads": 1}
        assert open_store(final.outputs["adapter"].uri).exists("adapter_model.safetensors")
    (a_start, a_end), (b_start, b_end) = intervals
    assert a_start < b_end and b_start < a_end, f"the resumed attempts did not overlap: {intervals}"


class LocalKubelet:
    """Runs each created Job's container here, as a pod would (the image's `python` = this interpreter, the
    pod's /work emptyDir = a temporary directory), and reports its exit to the fake API."""

    def __init__(self, root: Path):
        self.root, self.api = root, None
        self.procs: dict[str, subprocess.Popen] = {}

    def created(self, job) -> None:
        name, container = job.metadata.name, job.spec.template.spec.containers[0]
        pod_work = self.root / name
        command = [sys.executable if c == "python" else c for c in container.command]
        command = [str(pod_work / "job") if c == POD_WORK_DIR else c for c in command]
        env = {**os.environ, **{e.name: e.value for e in container.env if e.value is not None}}
        env["PYTHONPATH"] = str(REPO)
        self.api.run(name)
        proc = subprocess.Popen(command, env=env, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=open(self.root / f"{name}.log", "wb"))  # fmt: skip
        self.procs[name] = proc
        threading.Thread(target=self._report, args=(name, proc), daemon=True).start()

    def _report(self, name: str, proc: subprocess.Popen) -> None:
        rc = proc.wait()
        if self.api.job(name) is not None:  # not deleted meanwhile
            (self.api.succeed if rc == 0 else self.api.fail)(name)

    def deleted(self, job) -> None:
        proc = self.procs.get(job.metadata.name)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)

    def close(self) -> None:  # no pod outlives the test
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)


def test_a_job_runs_as_a_kubernetes_job_and_a_restarted_trainer_reattaches(
    trainer_service, tiny_llama_dir, oasst_dataset_uri, tmp_path
):
    kubelet = LocalKubelet(tmp_path / "pods")
    kubelet.root.mkdir()
    with FakeKubernetes(kubelet=kubelet) as api, contextlib.closing(kubelet):
        kubelet.api = api
        settings = {
            "launcher": "kubernetes",
            "k8s_api": api.url,
            "k8s_namespace": "polyglot",
            "k8s_image": "polyglot-trainer:0.1.0-cpu",
            "k8s_cpu": "1",
            "device": "cpu",
        }
        output_uri = (tmp_path / "out").as_uri()
        with trainer_service(**settings) as address, TrainerClient(address) as client:
            job = client.submit(
                base_model=str(tiny_llama_dir),
                dataset_uri=oasst_dataset_uri,
                output_uri=output_uri,
                idempotency_key="k8s",
                # Still training at the restart, however fast the machine: longer rows make each step slower.
                training={**TINY_RECIPE, "max_steps": 24, "checkpoint_every": 6, "max_length": 512},
            )
            name = job_name(job.id, 1)
            wait_until(lambda: client.get(job.id).progress.step >= 1, what="the pod to train")
        # The trainer stopped; the Job trains on. A new trainer re-attaches to it.
        assert api.job(name) is not None and kubelet.procs[name].poll() is None
        with trainer_service(**settings) as address, TrainerClient(address) as client:
            final = client.wait(job.id, timeout=240)

    assert final.state == JobState.SUCCEEDED, final.error
    assert final.attempts == 1 and final.progress.step == 24
    assert [p for m, p in api.requests if m == "POST"] == ["/apis/batch/v1/namespaces/polyglot/jobs"]  # one Job
    created = api.jobs[("polyglot", name)]
    assert created.metadata.labels[JOB_LABEL] == job.id and created.status.succeeded == 1
    reports = open_store(f"{output_uri}/_trainer/attempt-1")
    assert reports.exists("result.json") and reports.exists("progress.jsonl")
    assert open_store(final.outputs["adapter"].uri).exists("adapter_model.safetensors")
