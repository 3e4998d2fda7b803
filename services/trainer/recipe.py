"""The paper's LoRA recipe, and how it becomes TRL/PEFT arguments.

The recipe itself lives in the study config (`services.trainer.config.TrainingConfig`, §3.2 of the paper:
r 64, alpha 16, dropout 0.05 on all linear layers but `lm_head`; lr 1e-5 with a cosine schedule, warm-up
ratio 0.03, weight decay 0.05, max grad norm 0.3; 2,000 steps of effective batch 64; sequences cut at 1,024
tokens). `TrainingRecipe` only adds the run-control knobs the trainer service needs (how often to log and
checkpoint), so the study config and a job spec can never disagree about a default.

The loss covers the whole Guanaco text (`### Human: … ### Assistant: …`, every turn): the data is a
language-modelling dataset with one `text` field, so TRL computes the loss on every non-padding token.
Padding uses the EOS token, as the paper's (QLoRA) code does.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, ValidationError

from services.common.errors import InvalidArgument
from services.trainer.config import TrainingConfig

# Where a core field is spelt differently in `polyglot.v1.Hyperparameters`: errors name the request field.
PROTO_NAMES = {"lora_target_modules": "target_modules", "merge_adapter": "merge"}
HYPERPARAMETERS_FIELD = "spec.hyperparameters"


class TrainingRecipe(TrainingConfig):
    """The study's training section plus the service's run control (neither changes the trained weights)."""

    checkpoint_every: int = Field(
        200, gt=0, description="Save a resumable checkpoint to the artifact store every this many optimizer steps."
    )
    logging_every: int = Field(10, gt=0, description="Report loss, learning rate and throughput every this many steps.")

    def lora_kwargs(self) -> dict[str, Any]:
        """`peft.LoraConfig` arguments. PEFT's `all-linear` covers every linear layer except the output head."""
        return {
            "r": self.lora_r,
            "lora_alpha": self.lora_alpha,
            "lora_dropout": self.lora_dropout,
            "target_modules": self.lora_target_modules,
            "bias": "none",
            "task_type": "CAUSAL_LM",
        }

    def sft_kwargs(
        self,
        *,
        output_dir: str,
        devices: int = 1,
        device: Literal["cpu", "cuda"] = "cpu",
        bf16: bool = False,
        keep_checkpoints: int | None = 2,
    ) -> dict[str, Any]:
        """`trl.SFTConfig` arguments for this recipe on `devices` devices of kind `device`.

        TRL 1.16 defaults to bf16 and activation checkpointing; on CPU both are switched off and `use_cpu`
        set (otherwise it refuses to start). `max_length` truncates (keep the start); no packing, so each
        row is one sequence, as in the paper.
        """
        on_gpu = device == "cuda"
        return {
            "output_dir": output_dir,
            "max_steps": self.max_steps,
            "per_device_train_batch_size": self.per_device_batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps(devices),
            "learning_rate": self.learning_rate,
            "lr_scheduler_type": self.lr_scheduler,
            # transformers 5 reads a float in [0, 1) as a ratio of the total steps.
            "warmup_steps": self.warmup_ratio,
            "weight_decay": self.weight_decay,
            "max_grad_norm": self.max_grad_norm,
            "max_length": self.max_length,
            "truncation_mode": "keep_start",
            "packing": False,
            "dataset_text_field": "text",
            "completion_only_loss": False,
            "assistant_only_loss": False,
            "seed": self.seed,
            "data_seed": self.seed,
            "logging_steps": self.logging_every,
            "logging_first_step": True,
            "save_strategy": "steps",
            "save_steps": self.checkpoint_every,
            "save_total_limit": keep_checkpoints,
            "report_to": "none",
            "include_num_input_tokens_seen": "non_padding",
            "disable_tqdm": True,
            "dataloader_num_workers": 0,
            "use_cpu": not on_gpu,
            "bf16": on_gpu and bf16,
            "fp16": False,
            "activation_checkpointing": on_gpu,
            "model_init_kwargs": {"dtype": "bfloat16" if on_gpu and bf16 else "float32"},
        }

    def accumulation_field_error(self, devices: int) -> InvalidArgument | None:
        try:
            self.gradient_accumulation_steps(devices)
        except ValueError as exc:
            return InvalidArgument(str(exc), field=f"{HYPERPARAMETERS_FIELD}.effective_batch_size")
        return None


def build_recipe(
    overrides: dict[str, Any] | None = None, *, field_prefix: str = HYPERPARAMETERS_FIELD
) -> TrainingRecipe:
    """The paper's recipe with `overrides` (core field names) applied; bad values raise `InvalidArgument`
    naming the request field (`spec.hyperparameters.learning_rate`).

    When only the effective batch is given and the default per-device batch does not divide it, the
    per-device batch becomes their greatest common divisor (an effective batch of 6 runs 2 × 3).
    """
    values = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(values) - set(TrainingRecipe.model_fields))
    if unknown:
        name = unknown[0]
        raise InvalidArgument(f"unknown hyperparameter {name!r}", field=f"{field_prefix}.{PROTO_NAMES.get(name, name)}")
    modules = values.get("lora_target_modules")
    if isinstance(modules, list | tuple) and len(modules) == 1 and modules[0] == "all-linear":
        values["lora_target_modules"] = "all-linear"  # the proto can only say it as a one-element list
    effective = values.get("effective_batch_size")
    if "per_device_batch_size" not in values and isinstance(effective, int) and effective > 0:
        default = TrainingRecipe.model_fields["per_device_batch_size"].default
        values["per_device_batch_size"] = math.gcd(effective, default)
    try:
        return TrainingRecipe(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
        name = PROTO_NAMES.get(loc[0], loc[0]) if loc else ""
        field = f"{field_prefix}.{name}" if name else field_prefix
        if not name and "effective_batch_size" in error["msg"]:
            field = f"{field_prefix}.effective_batch_size"
        message = error["msg"].removeprefix("Value error, ")
        raise InvalidArgument(message, field=field) from None
