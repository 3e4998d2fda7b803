"""Acceptance of the trainer service over real gRPC with real worker processes (tiny Llama, real tokenizer).

A job on a small OASST dataset streams its progress to the end, its loss falls, the adapter loads back
with peft (and equals the merged model), the card is complete, and the job outlives a service restart.
Bad input is refused at submit time, before any job exists.
"""

from __future__ import annotations

import json
import statistics

import pytest

from services.common import errors
from services.common.store import open_object, open_store
from services.trainer.client import TrainerClient
from services.trainer.schema import Job, JobState, Progress
from tests.fixtures.trainer import TINY_RECIPE, write_jsonl

pytestmark = pytest.mark.slow


def test_bad_input_is_refused_at_submit_naming_the_field(
    trainer_service, tiny_llama_dir, oasst_dataset_uri, trainer_artifacts, tmp_path
):
    good = {
        "base_model": str(tiny_llama_dir),
        "dataset_uri": oasst_dataset_uri,
        "output_uri": (tmp_path / "o").as_uri(),
    }
    empty = trainer_artifacts.put_bytes("datasets/empty/train.jsonl", b"").uri
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")  # a file where the output directory's parent should be
    not_chat = write_jsonl(
        trainer_artifacts, "datasets/not-chat/train.jsonl", [{"text": "### Human: a ### Assistant: b"}, {"text": "b"}]
    )
    cases = [
        ({"dataset_uri": trainer_artifacts.uri("datasets/missing.jsonl")}, errors.NotFound, "spec.dataset_uri"),
        ({"dataset_uri": empty}, errors.InvalidArgument, "spec.dataset_uri"),
        ({"dataset_uri": not_chat}, errors.InvalidArgument, "row 1 (line 2)"),
        ({"training": {"learning_rate": 0.0}}, errors.InvalidArgument, "spec.hyperparameters.learning_rate"),
        ({"base_model": "nobody/no-such-model"}, errors.InvalidArgument, "spec.base_model"),
        ({"base_model": str(tmp_path / "nothing")}, errors.NotFound, "spec.base_model"),
        ({"output_uri": "file:///proc/polyglot/out"}, errors.PermissionDenied, "spec.output_uri"),  # outside roots
        ({"output_uri": (blocker / "out").as_uri()}, errors.InvalidArgument, "spec.output_uri"),  # not writable
    ]
    with trainer_service() as address, TrainerClient(address) as client:
        for change, error, needle in cases:
            with pytest.raises(error) as info:
                client.submit(**{**good, **change}, idempotency_key="bad")
            assert needle in str(info.value), change
        assert client.list() == []


def _read_json(uri: str) -> dict:
    store, key = open_object(uri)
    return json.loads(store.get_bytes(key))


def test_a_job_trains_streams_progress_and_stores_a_loadable_adapter(
    trainer_service, tiny_llama_dir, oasst_dataset_uri, trainer_artifacts, tmp_path
):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    output_uri = (tmp_path / "out").as_uri()
    submit = {
        "base_model": str(tiny_llama_dir),
        "dataset_uri": oasst_dataset_uri,
        "output_uri": output_uri,
        "idempotency_key": "acceptance",
        "training": {**TINY_RECIPE, "merge_adapter": True},
        "labels": {"test": "acceptance"},
    }
    with trainer_service() as address, TrainerClient(address) as client:
        job = client.submit(**submit)
        events = list(client.watch(job.id, timeout=280))
        listed = client.list(labels={"test": "acceptance"})

    final = events[-1]
    assert final.state == JobState.SUCCEEDED, final.error
    states = [e.state for e in events if isinstance(e, Job)]
    assert JobState.RUNNING in states and states[-1] == JobState.SUCCEEDED
    assert [j.id for j in listed] == [job.id]

    # Progress: every step reported in order (logging_every=1), with loss, lr, throughput and ETA.
    logs = [e for e in events if isinstance(e, Progress) and e.loss]
    assert [p.step for p in logs] == list(range(1, 25))
    assert all(p.total_steps == 24 and p.tokens_per_second > 0 and p.learning_rate > 0 for p in logs)
    assert logs[-1].eta_seconds == 0 and logs[0].eta_seconds > 0
    first, last = statistics.mean(p.loss for p in logs[:5]), statistics.mean(p.loss for p in logs[-5:])
    assert last < first, f"loss did not fall: {first:.3f} -> {last:.3f}"

    # The card is complete.
    card = _read_json(final.outputs["card"].uri)
    dataset_store, dataset_key = open_object(oasst_dataset_uri)
    assert card["dataset_hash"] == dataset_store.stat(dataset_key).sha256 and card["dataset"]["rows"] == 64
    assert card["hyperparameters"]["learning_rate"] == TINY_RECIPE["learning_rate"]
    assert card["hyperparameters"]["lora_dropout"] == 0.05  # an unset field took the paper's value
    assert card["code_version"]["package"] and card["library_versions"]["trl"] == "1.16.0"
    assert card["wall_time_seconds"] > 0 and card["global_step"] == 24 and card["tokens_seen"] > 0
    assert [point["step"] for point in card["loss_curve"]] == list(range(1, 25))
    assert card["final_loss"] < card["initial_loss"]
    assert set(final.outputs) == {"adapter", "merged", "card", "checkpoint"}

    # The adapter loads back with peft, is trained (LoRA B starts at zero), and equals the merged model.
    out = open_store(output_uri)
    out.get_dir("adapter", tmp_path / "adapter")
    out.get_dir("merged", tmp_path / "merged")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), tmp_path / "adapter")
    assert model.peft_config["default"].r == TINY_RECIPE["lora_r"]
    lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    inputs = tokenizer("### Human: Hallo!### Assistant:", return_tensors="pt")
    with torch.no_grad():
        difference = (model(**inputs).logits - merged(**inputs).logits).abs().max().item()
    assert difference < 1e-4

    # The job outlives the service: a new one on the same state dir knows it, and the key still names it.
    with trainer_service() as address, TrainerClient(address) as client:
        again = client.get(job.id)
        assert again.state == JobState.SUCCEEDED and again.outputs["adapter"].uri == final.outputs["adapter"].uri
        resubmitted = client.submit(**submit)
        assert (resubmitted.id, resubmitted.state, resubmitted.attempts) == (job.id, JobState.SUCCEEDED, 1)
