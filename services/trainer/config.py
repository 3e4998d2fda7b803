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
    seed: int = Field(DATA_SEED, ge=0, description="Training seed (data order, adapter initialisation).")
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
