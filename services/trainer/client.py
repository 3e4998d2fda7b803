"""Typed clients of the trainer service; they return the trainer's own models (`services.trainer.schema`:
`Job`, `Progress`, `JobState`), never protobufs.

with TrainerClient("127.0.0.1:50054") as trainer:
    job = trainer.submit(
        base_model="meta-llama/Llama-2-7b-hf",
        dataset_uri="s3://artifacts/datasets/multi-2/ab12/train.jsonl",
        output_uri="s3://artifacts/models/llama2-7b/multi-2/cd34",
        training=cfg.training,                      # a TrainingConfig: every field is sent
        idempotency_key="llama2-7b/multi-2/cd34",
    )
    final = trainer.wait(job.id, on_progress=lambda p: print(p.step, p.loss))
    final.state is JobState.SUCCEEDED

`AsyncTrainerClient` is the asyncio twin; both build requests and read replies with `services.trainer.wire`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from polyglot.v1 import trainer_pb2 as pb
from polyglot.v1 import trainer_pb2_grpc as pb_grpc

from services.common.client import AsyncServiceClient, ServiceClient
from services.common.errors import Unavailable
from services.trainer.config import TrainingConfig
from services.trainer.schema import Job, JobState, Progress
from services.trainer.wire import (
    SPEC_LEVEL,
    JobEvent,
    event_from_proto,
    hyperparameters_to_proto,
    job_from_proto,
    state_to_proto,
)


def submit_request(
    *,
    base_model: str,
    dataset_uri: str,
    output_uri: str,
    training: TrainingConfig | Mapping[str, Any] | None = None,
    idempotency_key: str = "",
    num_devices: int = 1,
    labels: Mapping[str, str] | None = None,
) -> pb.SubmitJobRequest:
    """`training` is a `TrainingConfig` (or a `TrainingRecipe`, with run control), every field sent; or a
    mapping of only the fields to set, by recipe field name, the rest taking the paper's recipe on the server."""
    values = training.model_dump() if isinstance(training, TrainingConfig) else dict(training or {})
    spec = pb.JobSpec(
        base_model=base_model,
        dataset_uri=dataset_uri,
        output_uri=output_uri,
        hyperparameters=hyperparameters_to_proto(values),
        merge=bool(values.get(SPEC_LEVEL)),
        num_devices=num_devices,
        labels=dict(labels or {}),
    )
    return pb.SubmitJobRequest(spec=spec, idempotency_key=idempotency_key)


def list_request(
    states: list[JobState] | None, labels: Mapping[str, str] | None, page_size: int, token: str
) -> pb.ListJobsRequest:
    return pb.ListJobsRequest(
        states=[state_to_proto(s) for s in states or []],
        labels=dict(labels or {}),
        page_size=page_size,
        page_token=token,
    )


class TrainerClient(ServiceClient):
    stub_class = pb_grpc.TrainerServiceStub

    def submit(
        self,
        *,
        base_model: str,
        dataset_uri: str,
        output_uri: str,
        training: TrainingConfig | Mapping[str, Any] | None = None,
        idempotency_key: str = "",
        num_devices: int = 1,
        labels: Mapping[str, str] | None = None,
    ) -> Job:
        """Submit (or, with a used idempotency key, resume/return) a job; `training` as in `submit_request`.
        Safe to retry."""
        request = submit_request(
            base_model=base_model,
            dataset_uri=dataset_uri,
            output_uri=output_uri,
            training=training,
            idempotency_key=idempotency_key,
            num_devices=num_devices,
            labels=labels,
        )
        return job_from_proto(self.call("SubmitJob", request))

    def get(self, job_id: str) -> Job:
        return job_from_proto(self.call("GetJob", pb.GetJobRequest(job_id=job_id)))

    def cancel(self, job_id: str) -> Job:
        return job_from_proto(self.call("CancelJob", pb.CancelJobRequest(job_id=job_id)))

    def list(
        self, states: list[JobState] | None = None, labels: Mapping[str, str] | None = None, page_size: int = 0
    ) -> list[Job]:
        """Every matching job (follows pages)."""
        jobs: list[Job] = []
        token = ""
        while True:
            reply = self.call("ListJobs", list_request(states, labels, page_size, token))
            jobs.extend(job_from_proto(j) for j in reply.jobs)
            token = reply.next_page_token
            if not token:
                return jobs

    def watch(self, job_id: str, *, timeout: float | None = None) -> Iterator[JobEvent]:
        """Progress, and the job on every state change, until the job ends (the last event is the finished job)."""
        for event in self.stream("WatchJob", pb.WatchJobRequest(job_id=job_id), timeout=timeout):
            yield event_from_proto(event)

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        reconnects: int = 3,
    ) -> Job:
        """Block until the job ends; returns the finished job. Re-opens the stream if the connection drops."""
        for _ in range(reconnects + 1):
            try:
                for event in self.watch(job_id, timeout=timeout):
                    if isinstance(event, Progress):
                        if on_progress:
                            on_progress(event)
                    elif event.state.terminal:
                        return event
            except Unavailable:
                continue
            job = self.get(job_id)  # the stream ended without a final event (e.g. the server restarted)
            if job.state.terminal:
                return job
        raise Unavailable(f"lost the stream of job {job_id} {reconnects + 1} times")


class AsyncTrainerClient(AsyncServiceClient):
    """`TrainerClient` for asyncio."""

    stub_class = pb_grpc.TrainerServiceStub

    async def submit(
        self,
        *,
        base_model: str,
        dataset_uri: str,
        output_uri: str,
        training: TrainingConfig | Mapping[str, Any] | None = None,
        idempotency_key: str = "",
        num_devices: int = 1,
        labels: Mapping[str, str] | None = None,
    ) -> Job:
        request = submit_request(
            base_model=base_model,
            dataset_uri=dataset_uri,
            output_uri=output_uri,
            training=training,
            idempotency_key=idempotency_key,
            num_devices=num_devices,
            labels=labels,
        )
        return job_from_proto(await self.call("SubmitJob", request))

    async def get(self, job_id: str) -> Job:
        return job_from_proto(await self.call("GetJob", pb.GetJobRequest(job_id=job_id)))

    async def cancel(self, job_id: str) -> Job:
        return job_from_proto(await self.call("CancelJob", pb.CancelJobRequest(job_id=job_id)))

    async def list(
        self, states: list[JobState] | None = None, labels: Mapping[str, str] | None = None, page_size: int = 0
    ) -> list[Job]:
        jobs: list[Job] = []
        token = ""
        while True:
            reply = await self.call("ListJobs", list_request(states, labels, page_size, token))
            jobs.extend(job_from_proto(j) for j in reply.jobs)
            token = reply.next_page_token
            if not token:
                return jobs

    async def watch(self, job_id: str, *, timeout: float | None = None) -> AsyncIterator[JobEvent]:
        async for event in self.stream("WatchJob", pb.WatchJobRequest(job_id=job_id), timeout=timeout):
            yield event_from_proto(event)

    async def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        reconnects: int = 3,
    ) -> Job:
        for _ in range(reconnects + 1):
            try:
                async for event in self.watch(job_id, timeout=timeout):
                    if isinstance(event, Progress):
                        if on_progress:
                            on_progress(event)
                    elif event.state.terminal:
                        return event
            except Unavailable:
                continue
            job = await self.get(job_id)
            if job.state.terminal:
                return job
        raise Unavailable(f"lost the stream of job {job_id} {reconnects + 1} times")
