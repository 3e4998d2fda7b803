"""The `kubernetes` launcher: its Job manifest (validated offline, strictly, by kubernetes-validate) and its
life against a fake API server (tests/unit/trainer/fake_k8s.py) driven by the real `kubernetes` client:
create -> running -> succeeded, failed, cancel -> delete, re-attach after a restart.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import kubernetes_validate
import pytest

from services.common.store import open_store
from services.trainer.k8s_launcher import JOB_LABEL, KubernetesLauncher, job_manifest, job_name, report_uri
from services.trainer.launch import LAUNCHERS, WORKER_MODULE, LocalLauncher
from services.trainer.schema import Job, JobSpec, WorkerTask
from services.trainer.settings import TrainerSettings
from tests.unit.test_deploy import _assert_secure_and_sized
from tests.unit.trainer.fake_k8s import FakeKubernetes

K8S_VERSIONS = ("1.35.0", "1.37.0")  # the oldest and newest schemas kubernetes-validate bundles
IMAGE = "polyglot-trainer:0.1.0-cuda"


def _manifest(settings: TrainerSettings, gpus: int) -> dict:
    return job_manifest(
        settings,
        job_id="job-0123456789abcdef",
        attempt=3,
        namespace="polyglot",
        image=IMAGE,
        report="s3://polyglot/artifacts/models/x/_trainer/attempt-3",
        num_gpus=gpus,
    )


@pytest.mark.parametrize("gpus", [0, 2])
def test_the_job_manifest_validates_strictly_and_says_what_the_attempt_needs(gpus):
    settings = TrainerSettings(k8s_node_selector={"nvidia.com/gpu.present": "true"}, k8s_backoff_limit=1)
    manifest = _manifest(settings, gpus)
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)
    meta, spec = manifest["metadata"], manifest["spec"]
    pod = spec["template"]["spec"]
    _assert_secure_and_sized("trainer-job", pod, probes=False)  # what deploy/k8s holds every pod to
    assert pod["automountServiceAccountToken"] is False and meta["labels"]["polyglot.io/peer"] == "true"
    (container,) = pod["containers"]
    assert meta["name"] == job_name("job-0123456789abcdef", 3) and len(meta["name"]) <= 63
    assert meta["labels"][JOB_LABEL] == "job-0123456789abcdef" == spec["template"]["metadata"]["labels"][JOB_LABEL]
    assert (spec["backoffLimit"], spec["ttlSecondsAfterFinished"]) == (1, settings.k8s_ttl_seconds_after_finished)
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == settings.k8s_service_account
    assert container["image"] == IMAGE
    command = container["command"]
    assert command[command.index("-m", 2) + 1] == WORKER_MODULE if gpus > 1 else command[1:3] == ["-m", WORKER_MODULE]
    assert command[-2:] == ["--report-uri", meta["annotations"]["polyglot.io/report-uri"]]
    env = {e["name"]: e for e in container["env"]}
    assert env["POLYGLOT_TRAINER_DEVICE"]["value"] == ("cuda" if gpus else "cpu")
    assert env["POLYGLOT_S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "polyglot-s3", "key": "secret-key"}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert all("value" not in env[name] for name in settings.k8s_secret_env)  # secrets by reference, never inline
    assert container["envFrom"] == [{"configMapRef": {"name": "polyglot-env"}}]
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert limits == requests and limits.get("nvidia.com/gpu") == (str(gpus) if gpus else None)
    assert ("tolerations" in pod) == bool(gpus) and pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    if gpus > 1:
        assert command[command.index("--num_processes") + 1] == str(gpus)


def test_launchers_are_named():
    assert LAUNCHERS.get("local") is LocalLauncher and LAUNCHERS.get("kubernetes") is KubernetesLauncher
    assert set(LAUNCHERS.names()) == {"local", "kubernetes"}


def _job(tmp_path, attempt: int) -> tuple[Job, WorkerTask]:
    spec = JobSpec(base_model="org/model", dataset_uri="file:///d.jsonl", output_uri=(tmp_path / "out").as_uri())
    job = Job(id="job-00000000000000aa", idempotency_key="k", spec=spec, attempts=attempt)
    task = WorkerTask(
        job_id=job.id,
        attempt=attempt,
        spec=spec,
        fingerprint=spec.fingerprint(),
        work_dir=str(tmp_path / "work"),
        parent_pid=1,
        cache_dir=str(tmp_path / "cache"),
        dataset={},
        created_at=datetime.now(UTC),
    )
    return job, task


async def test_a_job_attempt_through_the_kubernetes_api(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    log_path = work / "worker.log"
    with FakeKubernetes(own_image=IMAGE) as api:
        settings = TrainerSettings(k8s_api=api.url, k8s_namespace="polyglot", device="cuda", cancel_grace_seconds=7)
        launcher = KubernetesLauncher(settings)
        await launcher.prepare()
        assert launcher.image == IMAGE  # no image set: the trainer's own pod's

        # create -> running -> succeeded; the reports come from the store.
        job, task = _job(tmp_path, 1)
        handle = await launcher.start(job, launcher.adapt(task, None), work, log_path, None)
        created = api.job(handle.name)
        assert created.metadata.labels[JOB_LABEL] == job.id and created.spec.template.spec.restart_policy == "Never"
        assert created.spec.template.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
        reports = open_store(report_uri(job.spec.output_uri, 1))
        sent = WorkerTask.model_validate(reports.get_json("task.json"))
        assert (sent.work_dir, sent.parent_pid) == ("/work/job", 0)  # the pod's paths; no parent to watch
        api.run(handle.name)
        reports.put_bytes("progress.jsonl", b'{"event": "start", "step": 0}\n')
        assert await handle.poll() is None
        assert (work / "progress.jsonl").read_text() == '{"event": "start", "step": 0}\n'
        reports.put_json("result.json", {"step": 5, "outputs": {}})
        api.succeed(handle.name)
        assert await handle.poll() == 0 and json.loads((work / "result.json").read_text())["step"] == 5

        # The next attempt deletes the finished Job of the previous one first, then fails.
        job, task = _job(tmp_path, 2)
        for name in ("progress.jsonl", "result.json"):
            (work / name).unlink()
        second = await launcher.start(job, launcher.adapt(task, None), work, log_path, None)
        assert api.job(handle.name) is None and api.deletions[-1]["name"] == handle.name
        api.fail(second.name, message="Pod was evicted")
        assert await second.poll() == 1 and "Pod was evicted" in log_path.read_text()

        # A restarted trainer re-attaches to the running Job of attempt 3; cancel deletes it.
        job, task = _job(tmp_path, 3)
        third = await launcher.start(job, launcher.adapt(task, None), work, log_path, None)
        api.run(third.name)
        reborn = KubernetesLauncher(settings)
        await reborn.prepare()
        attached = await reborn.attach(job, work)
        assert attached.name == third.name and await attached.poll() is None
        listed = [(m, p) for m, p in api.requests if m == "GET" and p.endswith("/jobs")]
        assert listed, "each start lists the job's Jobs by label"
        await attached.terminate(settings.cancel_grace_seconds)
        deletion = api.deletions[-1]
        assert deletion["name"] == third.name and deletion["propagationPolicy"] == "Background"
        assert int(deletion["gracePeriodSeconds"]) == 7
        assert api.job(third.name) is None and await attached.poll() == -15
