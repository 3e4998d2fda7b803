"""gRPC face of the trainer: maps `polyglot.v1.trainer_pb2` messages to the job manager and back."""

from __future__ import annotations

from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from polyglot.v1 import common_pb2, trainer_pb2, trainer_pb2_grpc

from services.common.errors import InvalidArgument
from services.trainer.jobs import JobManager
from services.trainer.recipe import PROTO_NAMES, TrainingRecipe, build_recipe
from services.trainer.schema import Job, JobSpec, JobState, Progress

# Proto field → core recipe field, where they differ (the rest share names).
CORE_NAMES = {proto: core for core, proto in PROTO_NAMES.items()}
FLOAT32_FIELDS = {"lora_alpha", "lora_dropout"}  # `float` in the proto: print them back as the decimal sent


def overrides_from_proto(hp: trainer_pb2.Hyperparameters) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for descriptor in hp.DESCRIPTOR.fields:
        name = descriptor.name
        if descriptor.is_repeated:
            values = list(getattr(hp, name))
            if values:
                overrides[CORE_NAMES.get(name, name)] = values
        elif hp.HasField(name):
            value = getattr(hp, name)
            if name in FLOAT32_FIELDS:
                value = float(f"{value:.7g}")
            overrides[CORE_NAMES.get(name, name)] = value
    return overrides


def hyperparameters_to_proto(recipe: TrainingRecipe) -> trainer_pb2.Hyperparameters:
    hp = trainer_pb2.Hyperparameters()
    values = recipe.model_dump()
    for descriptor in hp.DESCRIPTOR.fields:
        value = values.get(CORE_NAMES.get(descriptor.name, descriptor.name))
        if value is None:
            continue
        if descriptor.is_repeated:
            getattr(hp, descriptor.name).extend([value] if isinstance(value, str) else value)
        else:
            setattr(hp, descriptor.name, value)
    return hp


def spec_from_proto(spec: trainer_pb2.JobSpec) -> JobSpec:
    recipe = build_recipe({**overrides_from_proto(spec.hyperparameters), "merge_adapter": spec.merge})
    if spec.num_devices < 0:
        raise InvalidArgument("must be >= 0 (0 means 1)", field="spec.num_devices")
    for name in ("base_model", "dataset_uri", "output_uri"):
        if not getattr(spec, name).strip():
            raise InvalidArgument("must not be empty", field=f"spec.{name}")
    return JobSpec(
        base_model=spec.base_model.strip(),
        dataset_uri=spec.dataset_uri.strip(),
        output_uri=spec.output_uri.strip(),
        recipe=recipe,
        num_devices=max(spec.num_devices, 1),
        labels=dict(spec.labels),
    )


def spec_to_proto(spec: JobSpec) -> trainer_pb2.JobSpec:
    return trainer_pb2.JobSpec(
        base_model=spec.base_model,
        dataset_uri=spec.dataset_uri,
        output_uri=spec.output_uri,
        hyperparameters=hyperparameters_to_proto(spec.recipe),
        merge=spec.recipe.merge_adapter,
        num_devices=spec.num_devices,
        labels=spec.labels,
    )


def progress_to_proto(progress: Progress) -> trainer_pb2.Progress:
    return trainer_pb2.Progress(**progress.model_dump())


def _timestamp(value) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def job_to_proto(job: Job) -> trainer_pb2.Job:
    return trainer_pb2.Job(
        id=job.id,
        idempotency_key=job.idempotency_key,
        spec=spec_to_proto(job.spec),
        state=trainer_pb2.JobState.Value(f"JOB_STATE_{job.state.value}"),
        progress=progress_to_proto(job.progress),
        outputs={name: common_pb2.ArtifactRef(uri=a.uri, sha256=a.sha256) for name, a in job.outputs.items()},
        error=job.error,
        attempts=job.attempts,
        created_at=_timestamp(job.created_at),
        started_at=_timestamp(job.started_at),
        finished_at=_timestamp(job.finished_at),
    )


def state_from_proto(value: int) -> JobState:
    name = trainer_pb2.JobState.Name(value).removeprefix("JOB_STATE_")
    try:
        return JobState(name)
    except ValueError:
        raise InvalidArgument(f"not a job state: {name}", field="states") from None


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, manager: JobManager):
        self.manager = manager

    async def SubmitJob(self, request, context):
        spec = spec_from_proto(request.spec)
        return job_to_proto(await self.manager.submit(spec, request.idempotency_key))

    async def WatchJob(self, request, context):
        async for item in self.manager.watch(request.job_id):
            if isinstance(item, Job):
                yield trainer_pb2.JobEvent(job=job_to_proto(item))
            else:
                yield trainer_pb2.JobEvent(progress=progress_to_proto(item))

    async def GetJob(self, request, context):
        return job_to_proto(self.manager.get(request.job_id))

    async def CancelJob(self, request, context):
        return job_to_proto(await self.manager.cancel(request.job_id))

    async def ListJobs(self, request, context):
        states = [state_from_proto(s) for s in request.states]
        jobs, token = self.manager.list(states, dict(request.labels), request.page_size, request.page_token)
        return trainer_pb2.ListJobsResponse(jobs=[job_to_proto(j) for j in jobs], next_page_token=token)

    async def aclose(self) -> None:
        await self.manager.aclose()
