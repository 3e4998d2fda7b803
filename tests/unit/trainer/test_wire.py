"""The one hyperparameter table: every TrainingConfig field reaches the trainer and comes back unchanged."""

from __future__ import annotations

from polyglot.v1 import trainer_pb2 as pb

from services.trainer.client import submit_request
from services.trainer.config import TrainingConfig
from services.trainer.recipe import TrainingRecipe
from services.trainer.wire import HYPERPARAMETERS, SPEC_LEVEL, spec_from_proto

# A value unlike the default for every field, so a field that is dropped on the way shows.
CHANGED = {
    "lora_r": 8,
    "lora_alpha": 32,
    "lora_dropout": 0.1,
    "lora_target_modules": ["q_proj", "v_proj"],
    "learning_rate": 2e-4,
    "lr_scheduler": "linear",
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "max_grad_norm": 1.0,
    "max_steps": 30,
    "effective_batch_size": 6,
    "per_device_batch_size": 2,
    "max_length": 256,
    "seed": 7,
    "padding_free": False,
    "group_by_length": True,
    "append_eos": False,
    "merge_adapter": True,
    "checkpoint_every": 5,
    "logging_every": 3,
}


def test_every_recipe_field_has_a_proto_counterpart_and_back():
    proto_fields = set(pb.Hyperparameters.DESCRIPTOR.fields_by_name)
    assert set(HYPERPARAMETERS) | {SPEC_LEVEL} == set(TrainingRecipe.model_fields)
    assert set(TrainingConfig.model_fields) <= set(HYPERPARAMETERS) | {SPEC_LEVEL}
    assert set(HYPERPARAMETERS.values()) == proto_fields  # and no proto field is left unread
    assert SPEC_LEVEL in TrainingConfig.model_fields and "merge" in pb.JobSpec.DESCRIPTOR.fields_by_name


def test_a_training_config_round_trips_field_by_field():
    assert set(CHANGED) == set(TrainingRecipe.model_fields), "give the new field a changed value here"
    recipe = TrainingRecipe(**CHANGED)
    defaults = TrainingRecipe()
    assert all(getattr(recipe, name) != getattr(defaults, name) for name in CHANGED)
    request = submit_request(base_model="m", dataset_uri="file:///d.jsonl", output_uri="file:///o", training=recipe)
    assert spec_from_proto(request.spec).recipe == recipe
    # What the study sends: its `training:` section, a TrainingConfig.
    study = TrainingConfig(**{name: CHANGED[name] for name in TrainingConfig.model_fields})
    request = submit_request(base_model="m", dataset_uri="file:///d.jsonl", output_uri="file:///o", training=study)
    received = spec_from_proto(request.spec).recipe
    assert {name: getattr(received, name) for name in TrainingConfig.model_fields} == study.model_dump()


def test_a_mapping_sends_only_its_fields():
    request = submit_request(
        base_model="m", dataset_uri="file:///d.jsonl", output_uri="file:///o", training={"learning_rate": 1e-3}
    )
    hp = request.spec.hyperparameters
    assert [f.name for f, _ in hp.ListFields()] == ["learning_rate"] and not request.spec.merge
    assert spec_from_proto(request.spec).recipe == TrainingRecipe(learning_rate=1e-3)
