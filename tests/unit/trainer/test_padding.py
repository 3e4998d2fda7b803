"""Padding-free batching is exact: the same batches train the same adapter as padded ones (tiny Llama, TRL).

Both runs see the same sequences in the same order (the recipe's seed); only the layout of a forward pass
differs: padded to the longest row, or laid end to end with position ids restarting at each sequence.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from services.trainer.recipe import build_recipe
from tests.fixtures.trainer import guanaco_rows

# Rows longer than max_length are cut, so truncation is part of what must agree. LoRA dropout is off: its
# random masks are drawn over the batch tensor, whose shape is exactly what padding-free changes.
RECIPE = {"learning_rate": 1e-2, "warmup_ratio": 0.0, "max_steps": 3, "per_device_batch_size": 4,
          "effective_batch_size": 8, "max_length": 48, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0}  # fmt: skip


def lora_weights(model) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


def train_adapter(model_dir: Path, texts: list[str], out: Path, **overrides):
    """The worker's construction of TRL's trainer, in process; returns the LoRA weights before and after."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    recipe = build_recipe({**RECIPE, **overrides})
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.pad_token = tokenizer.eos_token
    trainer = SFTTrainer(
        model=str(model_dir),
        args=SFTConfig(**{**recipe.sft_kwargs(output_dir=str(out)), "save_strategy": "no"}),
        train_dataset=Dataset.from_dict({"text": texts}),
        processing_class=tokenizer,
        data_collator=recipe.data_collator(tokenizer.pad_token_id),
        peft_config=LoraConfig(**recipe.lora_kwargs()),
    )
    batch = next(iter(trainer.get_train_dataloader()))
    padded = "attention_mask" in batch
    assert padded != recipe.padding_free
    if not padded:  # one row, every token real, position ids restarting at each sequence
        assert batch["input_ids"].shape[0] == 1 and int((batch["position_ids"] == 0).sum()) == 4
    initial = lora_weights(trainer.model)
    trainer.train()
    assert trainer.state.num_input_tokens_seen > 0
    return initial, lora_weights(trainer.model)


@pytest.fixture(scope="module")
def texts(shared_dir: Path) -> list[str]:
    return [row["text"] for row in guanaco_rows(shared_dir, 24, max_chars=600)]


def test_padding_free_trains_the_padded_runs_adapter(tiny_llama_dir: Path, texts: list[str], tmp_path: Path):
    torch.set_num_threads(1)
    initial, padded = train_adapter(tiny_llama_dir, texts, tmp_path / "padded", padding_free=False)
    same_start, free = train_adapter(tiny_llama_dir, texts, tmp_path / "free", padding_free=True)
    assert padded.keys() == free.keys() == initial.keys()
    for name in padded:
        torch.testing.assert_close(same_start[name], initial[name], rtol=0, atol=0)
        # Adam turns float-rounding differences of near-zero gradients into whole steps, so the tolerance
        # is relative to how far training moved the tensor (it moves every tensor here, lora_B from zero).
        update = torch.linalg.vector_norm(padded[name] - initial[name])
        assert update > 0, f"{name} did not train: the comparison would prove nothing"
        assert torch.linalg.vector_norm(free[name] - padded[name]) <= 5e-3 * update, name


def test_length_grouping_is_off_by_default_and_maps_to_transformers_sampler(tmp_path: Path):
    from trl import SFTConfig

    assert build_recipe().sft_kwargs(output_dir=str(tmp_path))["train_sampling_strategy"] == "random"
    grouped = SFTConfig(**build_recipe({"group_by_length": True}).sft_kwargs(output_dir=str(tmp_path)))
    assert grouped.train_sampling_strategy == "group_by_length"  # LengthGroupedSampler over the effective batch
