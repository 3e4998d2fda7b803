"""Numbers and names a worker would trip over are refused at submit, naming the request field (issue 19,
rows 1, 13 and 14; the service-level tests are in tests/reliability/)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from services.common.errors import InvalidArgument
from services.trainer.config import TrainingConfig
from services.trainer.recipe import build_recipe
from services.trainer.validation import check_target_modules, resolve_base_model
from services.trainer.wire import state_from_proto

FLOAT_FIELDS = [name for name, info in TrainingConfig.model_fields.items() if info.annotation is float]


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_floats_are_refused_naming_the_field(name, value):
    with pytest.raises(InvalidArgument) as info:
        build_recipe({name: value})
    assert info.value.field == f"spec.hyperparameters.{name}"


def test_a_study_file_cannot_say_inf_either():
    with pytest.raises(ValidationError, match="finite"):
        TrainingConfig.model_validate({"learning_rate": "inf"})


def test_seeds_stay_in_numpys_range():
    assert build_recipe({"seed": 2**32 - 1}).seed == 2**32 - 1
    with pytest.raises(InvalidArgument) as info:
        build_recipe({"seed": 2**32})
    assert info.value.field == "spec.hyperparameters.seed"


@pytest.mark.parametrize("value", [99, -1, 0])
def test_job_states_the_enum_does_not_name_are_invalid_argument(value):
    with pytest.raises(InvalidArgument) as info:
        state_from_proto(value)
    assert info.value.field == "states"


@pytest.mark.parametrize(
    "make_ref", [lambda tmp: "m" * 300, lambda tmp: str(tmp / ("m" * 300)), lambda tmp: "m" * 2000]
)
def test_overlong_base_model_references_are_invalid_argument(tmp_path, make_ref):
    with pytest.raises(InvalidArgument) as info:
        resolve_base_model(make_ref(tmp_path))
    assert info.value.field == "spec.base_model"


@pytest.mark.parametrize("modules", ["all-linear", ["q_proj", "v_proj"], ["self_attn.q_proj"], r".*\.q_proj"])
def test_target_modules_of_the_model_are_accepted(tiny_llama_dir, modules):
    check_target_modules(modules, resolve_base_model(str(tiny_llama_dir)))


@pytest.mark.parametrize("modules", [[], [""], "  ", ["nope"], ["q_proj", "nope"], ["mlp"], "(", "nothing_matches"])
def test_target_modules_the_model_lacks_are_refused(tiny_llama_dir, modules):
    with pytest.raises(InvalidArgument) as info:
        check_target_modules(modules, resolve_base_model(str(tiny_llama_dir)))
    assert info.value.field == "spec.hyperparameters.target_modules"


def test_a_diverged_loss_keeps_the_job_record_saveable(tmp_path, tiny_llama_dir):
    """A worker may report a NaN loss (a diverged run); the job record is strict JSON and must still save."""
    from services.trainer.jobs import JobStore
    from services.trainer.schema import Job, JobSpec, Progress

    spec = JobSpec(base_model=str(tiny_llama_dir), dataset_uri="file:///d.jsonl", output_uri=tmp_path.as_uri())
    job = Job(
        id="job-1", idempotency_key="k", spec=spec, progress=Progress(step=3, loss=math.nan, eta_seconds=math.inf)
    )
    store = JobStore(tmp_path / "jobs")
    store.save(job)
    [loaded] = store.load_all()
    assert math.isnan(loaded.progress.loss) and loaded.progress.eta_seconds == math.inf and loaded.progress.step == 3
