"""The `kubernetes` launcher: each job attempt runs as a Kubernetes Job (batch/v1) with its own GPU request.

For clusters where one pod cannot hold every GPU the study needs: the trainer service stays one small pod
(job records, the gRPC API) and asks the cluster for a pod per attempt, through the official `kubernetes`
client (`BatchV1Api`). Select it with `POLYGLOT_TRAINER_LAUNCHER=kubernetes`; the trainer's
ServiceAccount needs the Role in deploy/k8s/base/trainer/rbac.yaml.

An attempt's state lives in the artifact store, beside the job's outputs, so nothing depends on the
trainer's volume or on the trainer staying up:

    <output_uri>/_trainer/attempt-<n>/task.json        written by the trainer before the Job is created
    <output_uri>/_trainer/attempt-<n>/progress.jsonl   the worker's events, mirrored every few seconds
    <output_uri>/_trainer/attempt-<n>/result.json      (or error.json) written when the worker ends

The pod runs `python -m services.trainer.worker /work/job --report-uri <that prefix>` from the trainer
image; checkpoints go to the store as with the local launcher, so a new attempt resumes from the latest.
The trainer polls the Job (`read_namespaced_job_status`) and copies the report files into the job's work
directory, where the job manager reads them as it reads a local worker's. Cancel deletes the Job (its pods
get SIGTERM). A restarted trainer re-attaches to the Jobs of the jobs it had running; a Job that is gone
(deleted, or removed by its TTL) counts as finished with whatever result it left in the store.

The manifest is a pure function of its inputs (`job_manifest`), validated offline in the unit tests with
kubernetes-validate; `Api` is the few calls made, on a client configured for a real cluster or any URL.

    POLYGLOT_TRAINER_LAUNCHER=kubernetes POLYGLOT_TRAINER_K8S_IMAGE=polyglot-trainer:0.1.0-cuda polyglot-serve trainer
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

from services.common.errors import NotFound
from services.common.store import open_store
from services.trainer.launch import Launcher, WorkerHandle, worker_command
from services.trainer.schema import Job, WorkerTask
from services.trainer.settings import TrainerSettings

JOB_LABEL = "polyglot.io/trainer-job"
ATTEMPT_LABEL = "polyglot.io/attempt"
POD_WORK_DIR = "/work/job"
POD_CACHE_DIR = "/cache/trainer"
REPORTS = ("progress.jsonl", "result.json", "error.json")
SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
GPU = "nvidia.com/gpu"


def job_name(job_id: str, attempt: int) -> str:
    """A DNS-1123 name per attempt: `polyglot-train-job-0123abcd…-a2`."""
    return re.sub(r"[^a-z0-9-]", "-", f"polyglot-train-{job_id}-a{attempt}".lower())[:63].rstrip("-")


def report_uri(output_uri: str, attempt: int) -> str:
    return f"{output_uri.rstrip('/')}/_trainer/attempt-{attempt}"


def _secret_env(name: str, ref: str) -> dict[str, Any]:
    optional = ref.endswith("?")
    secret, _, key = ref.rstrip("?").partition("/")
    selector: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        selector["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": selector}}


def job_manifest(
    settings: TrainerSettings,
    *,
    job_id: str,
    attempt: int,
    namespace: str,
    image: str,
    report: str,
    num_gpus: int,
    python: str = "python",
) -> dict[str, Any]:
    """The batch/v1 Job of one attempt, as the API takes it (a plain dict; nothing here talks to a cluster)."""
    labels = {
        "app.kubernetes.io/name": "trainer-job",
        "app.kubernetes.io/part-of": "polyglot",
        "app.kubernetes.io/component": "training",
        JOB_LABEL: job_id,
        ATTEMPT_LABEL: str(attempt),
        # Reaches MinIO (deploy/k8s/base/network-policy.yaml).
        "polyglot.io/peer": "true",
    }
    threads = settings.k8s_cpu if settings.k8s_cpu.isdigit() else "1"
    env = [
        {"name": "POLYGLOT_TRAINER_DEVICE", "value": "cuda" if num_gpus else "cpu"},
        {"name": "OMP_NUM_THREADS", "value": threads},
        {"name": "MKL_NUM_THREADS", "value": threads},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "TOKENIZERS_PARALLELISM", "value": "false"},
        *(_secret_env(name, ref) for name, ref in sorted(settings.k8s_secret_env.items())),
    ]
    resources: dict[str, str] = {"cpu": settings.k8s_cpu, "memory": settings.k8s_memory}
    if num_gpus:
        resources[GPU] = str(num_gpus)  # extended resources: request and limit must be equal
    command = [*worker_command(POD_WORK_DIR, num_devices=max(num_gpus, 1), python=python), "--report-uri", report]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": settings.k8s_service_account,
        "automountServiceAccountToken": False,  # the worker never calls the Kubernetes API
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": int(settings.cancel_grace_seconds),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "worker",
                "image": image,
                "command": command,
                "env": env,
                "envFrom": [{"configMapRef": {"name": name}} for name in settings.k8s_env_from],
                "resources": {"requests": dict(resources), "limits": dict(resources)},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "cache", "mountPath": "/cache"},
                    {"name": "work", "mountPath": "/work"},
                    {"name": "dshm", "mountPath": "/dev/shm"},
                ],
            }
        ],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}},
            {"name": "cache", "emptyDir": {"sizeLimit": "100Gi"}},
            {"name": "work", "emptyDir": {"sizeLimit": "50Gi"}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
        ],
    }
    if settings.k8s_node_selector:
        pod_spec["nodeSelector"] = dict(settings.k8s_node_selector)
    if num_gpus:
        pod_spec["tolerations"] = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(job_id, attempt),
            "namespace": namespace,
            "labels": labels,
            "annotations": {"polyglot.io/report-uri": report},
        },
        "spec": {
            "backoffLimit": settings.k8s_backoff_limit,
            "ttlSecondsAfterFinished": settings.k8s_ttl_seconds_after_finished,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


class Api:
    """The calls the launcher makes, blocking (run them in a thread), on one `kubernetes.client.ApiClient`."""

    def __init__(self, settings: TrainerSettings):
        from kubernetes import client, config

        if settings.k8s_api:
            configuration = client.Configuration()
            configuration.host = settings.k8s_api
        else:
            configuration = client.Configuration()
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)
        self.client = client.ApiClient(configuration)
        self.batch = client.BatchV1Api(self.client)
        self.core = client.CoreV1Api(self.client)

    def create(self, manifest: dict[str, Any]):
        return self.batch.create_namespaced_job(manifest["metadata"]["namespace"], manifest)

    def status(self, namespace: str, name: str):
        """The Job, or None when it does not exist (any more)."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.batch.read_namespaced_job_status(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list_for(self, namespace: str, job_id: str) -> list:
        return self.batch.list_namespaced_job(namespace, label_selector=f"{JOB_LABEL}={job_id}").items

    def delete(self, namespace: str, name: str, grace_seconds: int | None = None) -> bool:
        """Delete the Job and (in the background) its pods; False if it was gone already."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.batch.delete_namespaced_job(
                name, namespace, propagation_policy="Background", grace_period_seconds=grace_seconds
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def own_image(self, namespace: str, pod: str) -> str:
        return self.core.read_namespaced_pod(pod, namespace).spec.containers[0].image


def finished(job) -> str | None:
    """'Complete' or 'Failed' once the Job's controller says so, else None."""
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition.type
    return None


class KubernetesJobHandle(WorkerHandle):
    """A running attempt = a Job, polled through the API; its reports are copied from the store."""

    def __init__(self, api: Api, namespace: str, name: str, report: str, work: Path, log_path: Path):
        self.api, self.namespace, self.name = api, namespace, name
        self.store, self.work, self.log_path = open_store(report), work, log_path
        self.deleted = False

    def _fetch(self, names: tuple[str, ...]) -> None:
        for name in names:
            with contextlib.suppress(NotFound):
                self.store.get_file(name, self.work / name)

    def _note(self, text: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(text + "\n")

    def _poll(self) -> int | None:
        job = self.api.status(self.namespace, self.name)
        state = finished(job) if job is not None else "Gone"
        # The worker uploads progress, then its result: fetching after the status read never misses it.
        self._fetch(("progress.jsonl",) if state is None else REPORTS)
        if state is None:
            return None
        if (self.work / "result.json").exists():
            return 0
        if self.deleted:
            return -15  # we deleted it: cancelled or stopped
        if state == "Failed":
            reason = next((c.message or c.reason for c in job.status.conditions if c.type == "Failed"), "")
            self._note(f"Kubernetes Job {self.name} failed: {reason}")
        elif state == "Gone" and not (self.work / "error.json").exists():
            self._note(f"Kubernetes Job {self.name} is gone (deleted, or removed by its TTL) and left no result")
        return 1

    async def poll(self) -> int | None:
        return await asyncio.to_thread(self._poll)

    async def terminate(self, grace_seconds: float) -> None:
        self.deleted = True
        await asyncio.to_thread(self.api.delete, self.namespace, self.name, int(grace_seconds))

    async def kill(self) -> None:
        self.deleted = True
        await asyncio.to_thread(self.api.delete, self.namespace, self.name, 0)


class KubernetesLauncher(Launcher):
    detached = True  # Jobs outlive the trainer: a restart re-attaches to them
    min_poll_seconds = 2.0  # one status read and one store read per running Job and poll

    def __init__(self, settings: TrainerSettings, **_: Any):
        super().__init__(settings)
        self.api: Api | None = None
        self.namespace = settings.k8s_namespace or ""
        self.image = settings.k8s_image or ""

    async def prepare(self) -> None:
        self.api = await asyncio.to_thread(Api, self.settings)
        if not self.namespace:
            found = SA_NAMESPACE_FILE.read_text().strip() if SA_NAMESPACE_FILE.exists() else ""
            self.namespace = found or "default"
        if not self.image:
            import socket

            # The trainer's own image: kustomize's `images:` pins it once for both.
            self.image = await asyncio.to_thread(self.api.own_image, self.namespace, socket.gethostname())

    def adapt(self, task: WorkerTask, reservation: Any) -> WorkerTask:
        threads = int(self.settings.k8s_cpu) if self.settings.k8s_cpu.isdigit() else None
        return task.model_copy(
            update={"work_dir": POD_WORK_DIR, "cache_dir": POD_CACHE_DIR, "parent_pid": 0, "torch_threads": threads}
        )

    async def start(self, job: Job, task: WorkerTask, work: Path, log_path: Path, reservation: Any) -> WorkerHandle:
        report = report_uri(job.spec.output_uri, task.attempt)
        store = open_store(report)
        for name in REPORTS:  # a previous run of this attempt number (a lost record) must not be read as ours
            await asyncio.to_thread(store.delete, name)
        await asyncio.to_thread(store.put_bytes, "task.json", json.dumps(task.model_dump(mode="json")).encode())
        manifest = job_manifest(
            self.settings,
            job_id=job.id,
            attempt=task.attempt,
            namespace=self.namespace,
            image=self.image,
            report=report,
            num_gpus=job.spec.num_devices if self.settings.device != "cpu" else 0,
        )
        # Never two workers on one job: Jobs of earlier attempts still around are deleted first.
        for old in await asyncio.to_thread(self.api.list_for, self.namespace, job.id):
            if old.metadata.name != manifest["metadata"]["name"]:
                await asyncio.to_thread(self.api.delete, self.namespace, old.metadata.name, 0)
        await asyncio.to_thread(self.api.create, manifest)
        return KubernetesJobHandle(self.api, self.namespace, manifest["metadata"]["name"], report, work, log_path)

    async def attach(self, job: Job, work: Path) -> WorkerHandle:
        name = job_name(job.id, job.attempts)
        log_path = work / f"worker-{job.attempts}.log"
        report = report_uri(job.spec.output_uri, job.attempts)
        return KubernetesJobHandle(self.api, self.namespace, name, report, work, log_path)
