"""The paper's LoRA recipe, and how it becomes TRL/PEFT arguments.

The recipe itself lives in the study config (`services.trainer.config.TrainingConfig`, §3.2 of the paper:
r 64, alpha 16, dropout 0.05 on all linear layers but `lm_head`; lr 1e-5 with a cosine schedule, warm-up
ratio 0.03, weight decay 0.05, max grad norm 0.3; 2,000 steps of effective batch 64; sequences cut at 1,024
tokens). `TrainingRecipe` only adds the run-control knobs the trainer service needs (how often to log and
checkpoint), so the study config and a job spec can never disagree about a default.

The loss covers the whole Guanaco text (`### Human: … ### Assistant: …`, every turn): the data is a
language-modelling dataset with one `text` field, so TRL computes the loss on every non-padding token.
Padding uses the EOS token, as the paper's (QLoRA) code does. With `padding_free` (the default) nothing is
padded: a batch's sequences are laid end to end, position ids restart at each one and attention stays inside
it, so the batches, the loss and the gradients are the padded run's up to float rounding, at no padding cost.
"""

from __future__ import annotations

import importlib.util
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
        row is one sequence, as in the paper. Padding-free batching is not switched on here but through
        `data_collator` (TRL's own `padding_free` refuses a `max_length`, whose truncation we keep).
        """
        on_gpu = device == "cuda"
        model_init: dict[str, Any] = {"dtype": "bfloat16" if on_gpu and bf16 else "float32"}
        model_init["attn_implementation"] = attention_implementation(device)
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
            # Padding-free batches hold no padding (and no attention mask to count by), so every token counts.
            "include_num_input_tokens_seen": "all" if self.padding_free else "non_padding",
            "train_sampling_strategy": "group_by_length" if self.group_by_length else "random",
            "disable_tqdm": True,
            "dataloader_num_workers": 0,
            "use_cpu": not on_gpu,
            "bf16": on_gpu and bf16,
            "fp16": False,
            "activation_checkpointing": on_gpu,
            "model_init_kwargs": model_init,
        }

    def data_collator(self, pad_token_id: int):
        """The batch builder `SFTTrainer` gets: TRL's padding-free collator (sequences end to end, position ids
        restarting at each, the first label of each masked as a shift would) or None for TRL's padded default.

        Given as a collator rather than `SFTConfig(padding_free=True)`, which TRL refuses together with
        `max_length` although its dataset preparation truncates either way."""
        if not self.padding_free:
            return None
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        return DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=True)

    def train_columns(self, texts: list[str], tokenizer: Any) -> dict[str, list]:
        """The columns of the dataset `SFTTrainer` gets. With `append_eos`, the texts: TRL tokenises them and appends
        EOS. Without, the texts tokenised here exactly as TRL would (`tokenizer(text=...)`, BOS included): TRL leaves
        an `input_ids` dataset as it is (no EOS added), then builds labels and truncates it as usual."""
        if self.append_eos:
            return {"text": list(texts)}
        return {"input_ids": [list(tokenizer(text=text)["input_ids"]) for text in texts]}

    def accumulation_field_error(self, devices: int) -> InvalidArgument | None:
        try:
            self.gradient_accumulation_steps(devices)
        except ValueError as exc:
            return InvalidArgument(str(exc), field=f"{HYPERPARAMETERS_FIELD}.effective_batch_size")
        return None


def attention_implementation(device: str) -> str:
    """FlashAttention 2 (varlen kernels: padding-free attention costs sum(len²), bit-for-bit per sequence)
    on a GPU where `flash_attn` is installed; otherwise PyTorch SDPA, where transformers turns the restarting
    position ids into a block-diagonal mask (exact, but attention then spans the whole concatenated batch)."""
    if device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


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
