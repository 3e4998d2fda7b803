"""`training.append_eos`: the paper's texts never end with EOS; TRL's default appends it (tiny Llama, Llama 2
tokenizer, the worker's construction of TRL's trainer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.trainer.recipe import build_recipe

TEXTS = ["### Human: Hallo, wie geht's?### Assistant: Gut, danke.", "### Human: Hi!### Assistant: Hello."]


def prepared_labels(model_dir: Path, out: Path, append_eos: bool) -> tuple[list[list[int]], int]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    recipe = build_recipe({"append_eos": append_eos, "max_steps": 1, "per_device_batch_size": 2,
                           "effective_batch_size": 2, "lora_r": 4})  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.pad_token = tokenizer.eos_token
    trainer = SFTTrainer(
        model=str(model_dir),
        args=SFTConfig(**{**recipe.sft_kwargs(output_dir=str(out)), "save_strategy": "no"}),
        train_dataset=Dataset.from_dict(recipe.train_columns(TEXTS, tokenizer)),
        processing_class=tokenizer,
        data_collator=recipe.data_collator(tokenizer.pad_token_id),
        peft_config=LoraConfig(**recipe.lora_kwargs()),
    )
    dataset = trainer.train_dataset
    labels = dataset["labels"] if "labels" in dataset.column_names else dataset["input_ids"]
    return [list(row) for row in labels], tokenizer.eos_token_id


@pytest.mark.parametrize("append_eos", [False, True])
def test_trailing_eos_follows_append_eos(tiny_llama_dir: Path, tmp_path: Path, append_eos: bool) -> None:
    from transformers import AutoTokenizer

    labels, eos = prepared_labels(tiny_llama_dir, tmp_path, append_eos)
    ends_with_eos = [row[-1] == eos for row in labels]
    assert ends_with_eos == [append_eos] * len(TEXTS)
    # Apart from the EOS, both settings train on the same tokens: the texts as TRL itself tokenises them.
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    expected = [tokenizer(text=t)["input_ids"] for t in TEXTS]
    assert [row[:-1] if append_eos else row for row in labels] == expected
