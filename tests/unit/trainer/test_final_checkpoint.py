"""A job stopped after its last checkpoint but before its outputs were stored finishes from that checkpoint
without training further (TRL on the tiny random Llama: checks the mechanics, not quality)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from services.trainer.card import loss_curve
from services.trainer.recipe import TrainingRecipe
from services.trainer.worker import restore_final_checkpoint
from tests.fixtures.trainer import TINY_RECIPE

pytestmark = pytest.mark.slow

TEXTS = [f"### Human: Say hello number {i}. ### Assistant: Hello, number {i}!" for i in range(24)]


def _trainer(recipe: TrainingRecipe, model: Path, out: Path):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.pad_token = tokenizer.eos_token
    return SFTTrainer(
        model=str(model),
        args=SFTConfig(**recipe.sft_kwargs(output_dir=str(out), keep_checkpoints=5)),
        train_dataset=Dataset.from_dict(recipe.train_columns(TEXTS, tokenizer)),
        processing_class=tokenizer,
        data_collator=recipe.data_collator(tokenizer.pad_token_id),
        peft_config=LoraConfig(**recipe.lora_kwargs()),
    )


def _lora(trainer) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(trainer.model).items()}


def test_the_last_checkpoint_restores_the_finished_training_exactly(tiny_llama_dir, tmp_path):
    torch.set_num_threads(1)
    recipe = TrainingRecipe(**{**TINY_RECIPE, "max_steps": 4, "checkpoint_every": 2})
    finished = _trainer(recipe, tiny_llama_dir, tmp_path / "run")
    finished.train()
    final = tmp_path / "run" / "checkpoint-4"

    restored = _trainer(recipe, tiny_llama_dir, tmp_path / "again")
    before = _lora(restored)
    restore_final_checkpoint(restored, final)
    assert restored.state.global_step == 4
    # The model card's loss curve (the checkpoint's history lacks only train()'s closing summary entry).
    assert loss_curve(restored.state.log_history) == loss_curve(finished.state.log_history)
    assert [e["step"] for e in loss_curve(restored.state.log_history)][-1] == 4
    assert restored.state.num_input_tokens_seen == finished.state.num_input_tokens_seen
    after, want = _lora(restored), _lora(finished)
    assert after.keys() == want.keys()
    assert all(torch.equal(after[k], want[k]) for k in want)
    assert any(not torch.equal(before[k], want[k]) for k in want)  # the restore changed the fresh adapter

    # Why the worker does not resume there: transformers takes one more optimizer step past max_steps.
    resumed = _trainer(recipe, tiny_llama_dir, tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=str(final))
    assert resumed.state.global_step == 5


def test_a_worker_stopped_after_its_last_checkpoint_finishes_with_the_same_adapter(
    tiny_llama_dir, oasst_dataset_uri, tmp_path
):
    from datetime import UTC, datetime

    from services.common.store import open_store
    from services.trainer.dataset import validate_dataset
    from services.trainer.schema import JobSpec, WorkerTask
    from services.trainer.worker import EventWriter, train

    out = open_store(str(tmp_path / "out"))
    spec = JobSpec(
        base_model=str(tiny_llama_dir),
        dataset_uri=oasst_dataset_uri,
        output_uri=out.uri(""),
        recipe=TrainingRecipe(**{**TINY_RECIPE, "max_steps": 4, "checkpoint_every": 2}),
    )

    def attempt(n: int) -> tuple[dict, list[dict]]:
        work = tmp_path / f"work-{n}"
        work.mkdir()
        task = WorkerTask(
            job_id="job-00000000000000ff", attempt=n, spec=spec, fingerprint=spec.fingerprint(), work_dir=str(work),
            parent_pid=1, cache_dir=str(tmp_path / "cache"), torch_threads=1,
            dataset=dataclasses.asdict(validate_dataset(oasst_dataset_uri)), created_at=datetime.now(UTC),
        )  # fmt: skip
        events = EventWriter(work / "progress.jsonl")
        result = train(task, work, events, rank=0, world=1)
        lines = (work / "progress.jsonl").read_text(encoding="utf-8").splitlines()
        return result, [json.loads(line) for line in lines]

    first, _ = attempt(1)
    assert out.get_json("checkpoints/latest.json")["step"] == 4
    adapter_files = sorted(o.key for o in out.list("adapter/"))
    first_adapter = {key: out.get_bytes(key) for key in adapter_files}
    # What a crash between the last checkpoint and the outputs leaves: the checkpoint, no outputs.
    for key in [o.key for o in out.list("") if not o.key.startswith("checkpoints/")]:
        out.delete(key)
    second, events = attempt(2)
    assert second["step"] == 4  # not 5: no optimizer step past max_steps
    assert [e["step"] for e in events if e["event"] == "start"] == [4]
    assert not [e for e in events if e["event"] == "log"]  # nothing was trained again
    second_adapter = {key: out.get_bytes(key) for key in adapter_files}
    # Byte for byte, but for the pickled TrainingArguments, which hold each attempt's own work directory.
    assert [k for k in adapter_files if first_adapter[k] != second_adapter[k]] == ["adapter/training_args.bin"]
    assert "adapter/adapter_model.safetensors" in adapter_files and first["step"] == 4
    assert out.get_json("card.json")["resumed_from_step"] == 4
