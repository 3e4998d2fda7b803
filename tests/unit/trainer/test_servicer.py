"""Message mapping: unset Hyperparameters fields take the recipe; the reply shows every effective value."""

from __future__ import annotations

import pytest
from polyglot.v1 import trainer_pb2 as pb

from services.common.errors import InvalidArgument
from services.trainer.schema import Artifact, Job, JobState
from services.trainer.wire import job_to_proto, overrides_from_proto, spec_from_proto, spec_to_proto


def _spec(**hp) -> pb.JobSpec:
    return pb.JobSpec(
        base_model="m", dataset_uri="file:///d.jsonl", output_uri="file:///o", hyperparameters=pb.Hyperparameters(**hp)
    )


def test_only_set_fields_are_overrides():
    hp = pb.Hyperparameters(learning_rate=1e-3, lora_dropout=0.1, target_modules=["q_proj"])
    assert overrides_from_proto(hp) == {"learning_rate": 1e-3, "lora_dropout": 0.1, "lora_target_modules": ["q_proj"]}


def test_a_spec_round_trips_through_the_proto():
    spec = spec_from_proto(_spec(learning_rate=1e-3, max_steps=30, seed=7))
    assert spec.recipe.lora_r == 64 and spec.recipe.max_steps == 30 and spec.num_devices == 1
    back = spec_to_proto(spec)
    assert back.hyperparameters.lora_r == 64 and list(back.hyperparameters.target_modules) == ["all-linear"]
    assert spec_from_proto(back).fingerprint() == spec.fingerprint()  # resubmitting a returned spec matches


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (_spec(learning_rate=0.0), "spec.hyperparameters.learning_rate"),
        (_spec(lora_alpha=16.5), "spec.hyperparameters.lora_alpha"),
        (pb.JobSpec(dataset_uri="file:///d", output_uri="file:///o"), "spec.base_model"),
        (
            pb.JobSpec(base_model="m", dataset_uri="file:///d", output_uri="file:///o", num_devices=-1),
            "spec.num_devices",
        ),
    ],
)
def test_bad_specs_name_the_field(message, field):
    with pytest.raises(InvalidArgument) as info:
        spec_from_proto(message)
    assert info.value.field == field


def test_job_to_proto_carries_state_outputs_and_times():
    job = Job(id="job-1", idempotency_key="k", spec=spec_from_proto(_spec()), state=JobState.SUCCEEDED, attempts=2)
    job.outputs["adapter"] = Artifact(uri="file:///o/adapter", sha256="ab")
    message = job_to_proto(job)
    assert message.state == pb.JOB_STATE_SUCCEEDED and message.attempts == 2
    assert message.outputs["adapter"].uri == "file:///o/adapter"
    assert message.created_at.seconds > 0 and not message.HasField("finished_at")
