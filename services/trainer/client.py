"""Typed client of the trainer service, for flows and tools.

with TrainerClient("127.0.0.1:50054") as trainer:
    job = trainer.submit(
        base_model="meta-llama/Llama-2-7b-hf",
        dataset_uri="s3://artifacts/datasets/multi-2/ab12/train.jsonl",
        output_uri="s3://artifacts/models/llama2-7b/multi-2/cd34",
        idempotency_key="llama2-7b/multi-2/cd34",
        merge=True,
    )
    final = trainer.wait(job.id, on_progress=lambda p: print(p.step, p.loss))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from polyglot.v1 import trainer_pb2 as pb
from polyglot.v1 import trainer_pb2_grpc as pb_grpc

from services.common.client import ServiceClient
from services.common.errors import Unavailable

TERMINAL = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}


def hyperparameters(**overrides: Any) -> pb.Hyperparameters:
    """`Hyperparameters` with only the given fields set; the rest take the paper's recipe on the server."""
    return pb.Hyperparameters(**{k: v for k, v in overrides.items() if v is not None})


class TrainerClient(ServiceClient):
    stub_class = pb_grpc.TrainerServiceStub

    def submit(
        self,
        *,
        base_model: str,
        dataset_uri: str,
        output_uri: str,
        idempotency_key: str = "",
        hyperparameters: pb.Hyperparameters | Mapping[str, Any] | None = None,
        merge: bool = False,
        num_devices: int = 1,
        labels: Mapping[str, str] | None = None,
    ) -> pb.Job:
        """Submit (or, with a used idempotency key, resume/return) a job. Safe to retry."""
        if isinstance(hyperparameters, Mapping):
            hyperparameters = pb.Hyperparameters(**hyperparameters)
        spec = pb.JobSpec(
            base_model=base_model,
            dataset_uri=dataset_uri,
            output_uri=output_uri,
            hyperparameters=hyperparameters,
            merge=merge,
            num_devices=num_devices,
            labels=dict(labels or {}),
        )
        return self.call("SubmitJob", pb.SubmitJobRequest(spec=spec, idempotency_key=idempotency_key))

    def get(self, job_id: str) -> pb.Job:
        return self.call("GetJob", pb.GetJobRequest(job_id=job_id))

    def cancel(self, job_id: str) -> pb.Job:
        return self.call("CancelJob", pb.CancelJobRequest(job_id=job_id))

    def list(
        self, states: list[int] | None = None, labels: Mapping[str, str] | None = None, page_size: int = 0
    ) -> list[pb.Job]:
        """Every matching job (follows pages)."""
        jobs: list[pb.Job] = []
        token = ""
        while True:
            reply = self.call(
                "ListJobs",
                pb.ListJobsRequest(
                    states=states or [], labels=dict(labels or {}), page_size=page_size, page_token=token
                ),
            )
            jobs.extend(reply.jobs)
            token = reply.next_page_token
            if not token:
                return jobs

    def watch(self, job_id: str, *, timeout: float | None = None) -> Iterator[pb.JobEvent]:
        """Progress and job events until the job ends (the last event is the finished job)."""
        yield from self.stream("WatchJob", pb.WatchJobRequest(job_id=job_id), timeout=timeout)

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        on_progress: Callable[[pb.Progress], None] | None = None,
        reconnects: int = 3,
    ) -> pb.Job:
        """Block until the job ends; returns the finished job. Re-opens the stream if the connection drops."""
        for _ in range(reconnects + 1):
            try:
                for event in self.watch(job_id, timeout=timeout):
                    if event.HasField("progress") and on_progress:
                        on_progress(event.progress)
                    elif event.HasField("job") and event.job.state in TERMINAL:
                        return event.job
            except Unavailable:
                continue
            job = self.get(job_id)  # the stream ended without a final event (e.g. the server restarted)
            if job.state in TERMINAL:
                return job
        raise Unavailable(f"lost the stream of job {job_id} {reconnects + 1} times")
