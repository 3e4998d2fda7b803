"""The paper's recipe (§3.2) as defaults, overrides naming the request field, and valid TRL/PEFT arguments."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.trainer.config import TrainingConfig
from services.trainer.recipe import TrainingRecipe, build_recipe

PAPER = {
    "lora_r": 64,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "lora_target_modules": "all-linear",
    "learning_rate": 1e-5,
    "lr_scheduler": "cosine",
    "warmup_ratio": 0.03,
    "weight_decay": 0.05,
    "max_grad_norm": 0.3,
    "max_steps": 2000,
    "effective_batch_size": 64,
    "max_length": 1024,
}


def test_defaults_are_the_papers_recipe():
    recipe = build_recipe()
    assert {name: getattr(recipe, name) for name in PAPER} == PAPER
    assert recipe.gradient_accumulation_steps(1) * recipe.per_device_batch_size == 64


def test_one_source_of_truth_with_the_study_config():
    study, service = TrainingConfig(), TrainingRecipe()
    assert service.model_dump(include=set(TrainingConfig.model_fields)) == study.model_dump()


def test_overrides_apply_and_the_rest_stay_default():
    recipe = build_recipe({"learning_rate": 1e-3, "max_steps": 30, "lora_target_modules": ["q_proj", "v_proj"]})
    assert (recipe.learning_rate, recipe.max_steps, recipe.lora_target_modules) == (1e-3, 30, ["q_proj", "v_proj"])
    assert recipe.lora_r == 64 and recipe.weight_decay == 0.05


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"learning_rate": 0.0}, "spec.hyperparameters.learning_rate"),
        ({"learning_rate": -1e-5}, "spec.hyperparameters.learning_rate"),
        ({"lora_r": 0}, "spec.hyperparameters.lora_r"),
        ({"lr_scheduler": "exponential"}, "spec.hyperparameters.lr_scheduler"),
        ({"lora_target_modules": [1, 2]}, "spec.hyperparameters.target_modules"),
        ({"effective_batch_size": 10, "per_device_batch_size": 4}, "spec.hyperparameters.effective_batch_size"),
        ({"warmup_ratio": 1.5}, "spec.hyperparameters.warmup_ratio"),
    ],
)
def test_bad_values_name_the_request_field(overrides, field):
    with pytest.raises(InvalidArgument) as info:
        build_recipe(overrides)
    assert info.value.field == field


def test_effective_batch_alone_picks_a_per_device_batch_that_divides_it():
    assert build_recipe({"effective_batch_size": 2}).per_device_batch_size == 2
    assert build_recipe({"effective_batch_size": 6}).per_device_batch_size == 2
    assert build_recipe({"effective_batch_size": 128}).gradient_accumulation_steps(1) == 32


def test_accumulation_spreads_the_effective_batch_over_devices():
    recipe = build_recipe()
    assert recipe.gradient_accumulation_steps(4) == 4
    assert recipe.accumulation_field_error(3).field == "spec.hyperparameters.effective_batch_size"


def test_sft_arguments_build_a_trl_config_on_cpu(tmp_path):
    from trl import SFTConfig

    recipe = build_recipe({"max_steps": 7, "checkpoint_every": 3, "logging_every": 2})
    config = SFTConfig(**recipe.sft_kwargs(output_dir=str(tmp_path)))
    assert config.use_cpu and not config.bf16 and not config.activation_checkpointing
    assert config.max_length == 1024 and config.truncation_mode == "keep_start" and not config.packing
    assert config.completion_only_loss is False and config.assistant_only_loss is False  # loss on the whole text
    assert config.gradient_accumulation_steps == 16 and config.per_device_train_batch_size == 4
    assert config.lr_scheduler_type.value == "cosine" and config.learning_rate == 1e-5
    assert config.weight_decay == 0.05 and config.max_grad_norm == 0.3
    assert config.get_warmup_steps(2000) == 60  # ratio 0.03 of the steps
    assert (config.max_steps, config.save_steps, config.logging_steps) == (7, 3, 2)


def test_gpu_arguments_use_bf16_and_activation_checkpointing(tmp_path):
    kwargs = build_recipe().sft_kwargs(output_dir=str(tmp_path), devices=2, device="cuda", bf16=True)
    assert kwargs["bf16"] and kwargs["activation_checkpointing"] and not kwargs["use_cpu"]
    assert kwargs["gradient_accumulation_steps"] == 8
    # FlashAttention's varlen kernels where installed, else SDPA (both exact for padding-free batches).
    assert kwargs["model_init_kwargs"]["dtype"] == "bfloat16"
    assert kwargs["model_init_kwargs"]["attn_implementation"] in {"flash_attention_2", "sdpa"}


def test_lora_targets_every_linear_layer_but_the_output_head(tiny_llama_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    recipe = build_recipe()
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), LoraConfig(**recipe.lora_kwargs()))
    adapted = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert model.peft_config["default"].r == 64 and model.peft_config["default"].lora_alpha == 16
