"""Row 14: a `seed` >= 2^32 and unknown or empty `target_modules` were accepted at submit, then the worker
failed (numpy takes seeds below 2^32; PEFT finds no such module), although the trainer's README says bad
input is refused at submit. Reproduced before the fix against the real trainer service: each submit
returned a QUEUED job.

Remedy: `TrainingConfig.seed` is bounded to numpy's range (services/trainer/config.py), and
`validation.check_target_modules` lets PEFT inject the asked-for modules into the base model built from its
`config.json` on the meta device (no weights), as the worker would: no match, an empty name, a bad regular
expression or a module PEFT cannot adapt is INVALID_ARGUMENT naming `spec.hyperparameters.target_modules`.

    .venv/bin/python -m pytest tests/reliability/test_row14_trainer_fields.py -q
"""

from __future__ import annotations

import pytest

from services.common import errors
from services.trainer.client import TrainerClient
from tests.fixtures.trainer import TINY_RECIPE

CASES = [
    ({"seed": 2**32}, "seed"),
    ({"seed": 2**63 - 1}, "seed"),
    ({"lora_target_modules": ["q_proj", "no_such_module"]}, "target_modules"),
    ({"lora_target_modules": [""]}, "target_modules"),
    ({"lora_target_modules": ["mlp"]}, "target_modules"),  # a module, but not a layer PEFT can adapt
]


def test_out_of_range_seeds_and_unknown_target_modules_are_refused_at_submit(
    trainer_service, tiny_llama_dir, oasst_dataset_uri, tmp_path
):
    good = {"base_model": str(tiny_llama_dir), "dataset_uri": oasst_dataset_uri, "output_uri": tmp_path.as_uri()}
    with trainer_service() as address, TrainerClient(address) as client:
        for change, field in CASES:
            with pytest.raises(errors.InvalidArgument) as info:
                client.submit(**good, training={**TINY_RECIPE, **change})
            assert str(info.value).startswith(f"spec.hyperparameters.{field}: "), change
        assert client.list() == []
