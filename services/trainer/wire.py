"""`polyglot.v1.trainer_pb2` ↔ the trainer's own models (`schema`, `recipe`), both ways, for the servicer
and the clients alike.

Hyperparameters map through one table, `HYPERPARAMETERS`, derived from the recipe's fields and the few
renames of `recipe.PROTO_NAMES`: a new `TrainingConfig` field reaches the trainer once the proto has it,
and a unit test fails until it does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from polyglot.v1 import common_pb2
from polyglot.v1 import trainer_pb2 as pb

from services.common.errors import InvalidArgument
from services.trainer.recipe import HYPERPARAMETERS_FIELD, PROTO_NAMES, TrainingRecipe, build_recipe
from services.trainer.schema import Artifact, Job, JobSpec, JobState, Progress

SPEC_LEVEL = "merge_adapter"  # travels as `JobSpec.merge`: what to store, not how to train
# Recipe field → `Hyperparameters` field: every recipe field (the study's TrainingConfig plus run control).
HYPERPARAMETERS = {name: PROTO_NAMES.get(name, name) for name in TrainingRecipe.model_fields if name != SPEC_LEVEL}
FLOAT32_FIELDS = {"lora_alpha", "lora_dropout"}  # `float` in the proto: read them back as the decimal sent

JobEvent = Job | Progress  # what `WatchJob` streams: progress, and the job on every state change


def hyperparameters_to_proto(values: Mapping[str, Any]) -> pb.Hyperparameters:
    """`Hyperparameters` from recipe values by field name; absent or None fields stay unset (the server's
    recipe fills them). `merge_adapter` is ignored here: see `SPEC_LEVEL`."""
    unknown = sorted(set(values) - set(HYPERPARAMETERS) - {SPEC_LEVEL})
    if unknown:
        raise InvalidArgument(f"unknown hyperparameter {unknown[0]!r}", field=f"{HYPERPARAMETERS_FIELD}.{unknown[0]}")
    hp = pb.Hyperparameters()
    for core, proto in HYPERPARAMETERS.items():
        value = values.get(core)
        if value is None:
            continue
        if hp.DESCRIPTOR.fields_by_name[proto].is_repeated:
            getattr(hp, proto).extend([value] if isinstance(value, str) else value)
        else:
            setattr(hp, proto, value)
    return hp


def overrides_from_proto(hp: pb.Hyperparameters) -> dict[str, Any]:
    """The fields a request set, by recipe field name."""
    overrides: dict[str, Any] = {}
    for core, proto in HYPERPARAMETERS.items():
        if hp.DESCRIPTOR.fields_by_name[proto].is_repeated:
            values = list(getattr(hp, proto))
            if values:
                overrides[core] = values
        elif hp.HasField(proto):
            value = getattr(hp, proto)
            overrides[core] = float(f"{value:.7g}") if proto in FLOAT32_FIELDS else value
    return overrides


def spec_from_proto(spec: pb.JobSpec) -> JobSpec:
    recipe = build_recipe({**overrides_from_proto(spec.hyperparameters), SPEC_LEVEL: spec.merge})
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


def spec_to_proto(spec: JobSpec) -> pb.JobSpec:
    return pb.JobSpec(
        base_model=spec.base_model,
        dataset_uri=spec.dataset_uri,
        output_uri=spec.output_uri,
        hyperparameters=hyperparameters_to_proto(spec.recipe.model_dump()),
        merge=spec.recipe.merge_adapter,
        num_devices=spec.num_devices,
        labels=spec.labels,
    )


def state_to_proto(state: JobState) -> int:
    return pb.JobState.Value(f"JOB_STATE_{state.value}")


def state_from_proto(value: int, *, field: str = "states") -> JobState:
    """The job state of an enum number; a number the enum does not name (proto3 keeps unknown values) or
    UNSPECIFIED is INVALID_ARGUMENT."""
    try:
        return JobState(pb.JobState.Name(value).removeprefix("JOB_STATE_"))
    except ValueError:
        known = ", ".join(f"{state_to_proto(s)} ({s.value})" for s in JobState)
        raise InvalidArgument(f"{value} is not a job state; one of {known}", field=field) from None


def progress_to_proto(progress: Progress) -> pb.Progress:
    return pb.Progress(**progress.model_dump())


def progress_from_proto(message: pb.Progress) -> Progress:
    return Progress(**{name: getattr(message, name) for name in Progress.model_fields})


def _timestamp(value) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _datetime(message: pb.Job, name: str):
    return getattr(message, name).ToDatetime(tzinfo=UTC) if message.HasField(name) else None


def job_to_proto(job: Job) -> pb.Job:
    return pb.Job(
        id=job.id,
        idempotency_key=job.idempotency_key,
        spec=spec_to_proto(job.spec),
        state=state_to_proto(job.state),
        progress=progress_to_proto(job.progress),
        outputs={name: common_pb2.ArtifactRef(uri=a.uri, sha256=a.sha256) for name, a in job.outputs.items()},
        error=job.error,
        attempts=job.attempts,
        created_at=_timestamp(job.created_at),
        started_at=_timestamp(job.started_at),
        finished_at=_timestamp(job.finished_at),
    )


def job_from_proto(message: pb.Job) -> Job:
    """The job as the service sees it, less its private bookkeeping (worker pid, dataset manifest)."""
    return Job(
        id=message.id,
        idempotency_key=message.idempotency_key,
        spec=spec_from_proto(message.spec),
        state=state_from_proto(message.state),
        progress=progress_from_proto(message.progress),
        outputs={name: Artifact(uri=a.uri, sha256=a.sha256) for name, a in message.outputs.items()},
        error=message.error,
        attempts=message.attempts,
        created_at=_datetime(message, "created_at"),
        started_at=_datetime(message, "started_at"),
        finished_at=_datetime(message, "finished_at"),
    )


def event_from_proto(message: pb.JobEvent) -> JobEvent:
    if message.HasField("job"):
        return job_from_proto(message.job)
    return progress_from_proto(message.progress)
