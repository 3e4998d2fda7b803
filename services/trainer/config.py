"""The LoRA training recipe: what a trainer job trains with. Defaults are the paper's recipe (§3.2).

A study file's `training:` section is this model, and the trainer client sends it as a job's
hyperparameters, so the study and a job spec can never disagree about a default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from services.common.config.types import Section
from services.common.presets import DATA_SEED


class TrainingConfig(Section):
    """LoRA instruction tuning; defaults are the paper's recipe (§3.2)."""

    lora_r: int = Field(64, gt=0, description="LoRA rank.")
    lora_alpha: int = Field(16, gt=0, description="LoRA scaling alpha.")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA path.")
    lora_target_modules: str | list[str] = Field(
        "all-linear", description="Modules that get adapters: `all-linear` or a list of module names."
    )
    learning_rate: float = Field(1e-5, gt=0.0, description="Peak learning rate.")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate schedule after warm-up."
    )
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0, description="Fraction of steps spent warming up.")
    weight_decay: float = Field(0.05, ge=0.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(0.3, gt=0.0, description="Gradient clipping norm.")
    max_steps: int = Field(2000, gt=0, description="Optimizer steps.")
    effective_batch_size: int = Field(
        64, gt=0, description="Sequences per optimizer step, across devices and gradient accumulation."
    )
    per_device_batch_size: int = Field(
        4, gt=0, description="Sequences per device per forward pass; accumulation makes up the rest."
    )
    max_length: int = Field(1024, gt=0, description="Longest tokenised training sequence; longer ones are cut.")
    seed: int = Field(
        DATA_SEED, ge=0, le=2**32 - 1, description="Training seed (data order, adapter initialisation); numpy's range."
    )
    padding_free: bool = Field(
        True,
        description="Lay each forward pass's sequences end to end instead of padding them to the longest, so every "
        "computed token is a real one. Same batches and, within float rounding, the same loss and gradients as "
        "padding (position ids restart per sequence and attention stays inside it: FlashAttention's varlen kernel "
        "when installed, otherwise SDPA with a block-diagonal mask). The paper padded; the trained adapter agrees.",
    )
    group_by_length: bool = Field(
        False,
        description="Draw each optimizer step's sequences from a pool sorted by length (transformers' "
        "LengthGroupedSampler), which cuts padding further. Unlike `padding_free` it changes which sequences share "
        "a step, so the run is no longer the paper's uniformly shuffled one: off by default.",
    )
    append_eos: bool = Field(
        True,
        description="End every training sequence with the EOS token, so the model learns to stop (TRL's default). The "
        "paper's texts never end with EOS (false): its models never learned to stop, which shapes reply length.",
    )
    merge_adapter: bool = Field(False, description="Also store the base model with the adapter merged in.")

    @model_validator(mode="after")
    def _batch(self) -> TrainingConfig:
        if self.effective_batch_size % self.per_device_batch_size:
            raise ValueError(
                f"effective_batch_size {self.effective_batch_size} is not a multiple of "
                f"per_device_batch_size {self.per_device_batch_size}"
            )
        return self

    def gradient_accumulation_steps(self, devices: int = 1) -> int:
        per_step = self.per_device_batch_size * devices
        if self.effective_batch_size % per_step:
            raise ValueError(f"effective_batch_size {self.effective_batch_size} does not split over {devices} devices")
        return self.effective_batch_size // per_step
