"""The training card names data, recipe, code and libraries, and carries the loss curve."""

from __future__ import annotations

from services.trainer.card import build_card, code_version, library_versions, loss_curve
from services.trainer.dataset import DatasetManifest
from services.trainer.recipe import build_recipe
from services.trainer.schema import JobSpec

HISTORY = [
    {"loss": 10.3, "learning_rate": 1e-3, "epoch": 0.1, "step": 1},
    {"loss": 9.8, "learning_rate": 5e-4, "epoch": 0.2, "step": 2},
    {"train_runtime": 3.0, "train_loss": 10.0, "step": 2},
]


def test_loss_curve_keeps_only_training_log_entries():
    assert loss_curve(HISTORY) == [
        {"step": 1, "loss": 10.3, "learning_rate": 1e-3, "epoch": 0.1},
        {"step": 2, "loss": 9.8, "learning_rate": 5e-4, "epoch": 0.2},
    ]


def test_versions_name_the_libraries_and_the_code():
    versions = library_versions()
    assert {"python", "torch", "transformers", "peft", "trl", "accelerate"} <= set(versions)
    assert versions["trl"] == "1.16.0" and versions["peft"] == "0.21.2"
    code = code_version()
    assert code["package"] == "0.1.0"
    assert code["git_sha"] is None or len(code["git_sha"]) == 40


def test_card_has_every_section():
    spec = JobSpec(base_model="m", dataset_uri="file:///d.jsonl", output_uri="file:///o", recipe=build_recipe())
    dataset = DatasetManifest(uri="file:///d.jsonl", sha256="ab" * 32, rows=3, size_bytes=10)
    card = build_card(
        job_id="job-1",
        spec=spec,
        fingerprint=spec.fingerprint(),
        dataset=dataset,
        base_model={"ref": "m", "resolved": "m"},
        log_history=HISTORY,
        wall_seconds=12.5,
        attempts=2,
        resumed_from_step=1,
        devices={"kind": "cpu", "count": 1},
        outputs={"adapter": {"uri": "file:///o/adapter", "sha256": "cd" * 32}},
        tokens_seen=100,
        global_step=2,
    )
    assert card["dataset_hash"] == "ab" * 32
    assert card["hyperparameters"]["lora_r"] == 64 and card["hyperparameters"]["gradient_accumulation_steps"] == 16
    assert (card["initial_loss"], card["final_loss"]) == (10.3, 9.8)
    assert card["wall_time_seconds"] == 12.5 and card["attempts"] == 2 and card["resumed_from_step"] == 1
    assert card["library_versions"]["torch"].startswith("2.13")
