"""Progress from real components: a real trainer job's WatchJob stream reaches the progress sink as step /
total / loss through the study's own training step; `polyglot score` keeps stdout for its paths (or one
JSON object) and is silent on stderr with --quiet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows import progress
from flows.cli import app
from flows.config import load_config
from flows.data.build import Built
from flows.data.manifest import DatasetManifest
from flows.steps import train_model
from services.common.store import open_store
from services.trainer.client import TrainerClient

REPO = Path(__file__).resolve().parents[2]
STEPS = 2


@pytest.mark.slow
def test_a_training_job_streams_step_total_and_loss_into_the_sink(
    trainer_service, tiny_llama_dir, oasst_dataset_uri, tmp_path
):
    store_uri = (tmp_path / "store").as_uri()
    training = {"max_steps": STEPS, "max_length": 32, "per_device_batch_size": 2, "effective_batch_size": 2}
    cfg = load_config(
        REPO / "configs" / "smoke.yaml",
        {"artifact_store": store_uri, **{f"training.{name}": str(value) for name, value in training.items()}},
    )
    manifest = DatasetManifest(
        kind="mix", name="oasst-small", key="datasets/oasst-small/test", data="train.jsonl", data_sha256="0" * 64,
        rows=64, counts={}, inputs_sha256="0" * 64, version=1,
    )  # fmt: skip
    mix, events = Built(manifest, oasst_dataset_uri, True), []
    with trainer_service() as address, TrainerClient(address) as trainer, progress.using(events.append):
        model = train_model(cfg, open_store(store_uri), trainer, "tiny-llama", str(tiny_llama_dir), mix)

    started, *reports, done = events
    assert started == progress.TrainingStarted("tiny-llama/oasst-small", model.job_id, STEPS)
    assert reports and all(isinstance(r, progress.TrainingProgress) for r in reports)
    assert {(r.job, r.total_steps) for r in reports} == {("tiny-llama/oasst-small", STEPS)}
    logged = [r for r in reports if r.loss > 0]  # the trainer logs the first step's loss (logging_first_step)
    assert logged and logged[0].step >= 1 and logged[0].tokens_per_second > 0
    assert (done.state, done.step) == ("SUCCEEDED", STEPS) and done.loss > 0


XQUAD_CSV = (
    "task,language,variant,model,id,prompt,reply,answers\n"
    "xquad,de,xx:xx,mine,q1,Wo?,Berlin,Berlin\n"
    "xquad,de,xx:xx,mine,q2,Wer?,Goethe,Schiller\n"
)


def test_score_prints_its_paths_on_stdout_json_for_scripts_and_nothing_else_when_quiet(tmp_path):
    outputs = tmp_path / "outputs.csv"
    outputs.write_text(XQUAD_CSV, encoding="utf-8")
    runner = CliRunner()

    plain = runner.invoke(app, ["score", str(outputs), "--out", str(tmp_path / "a")])
    assert plain.exit_code == 0, plain.output
    printed = plain.stdout.splitlines()
    assert printed[0] == str(tmp_path / "a" / "results.jsonl") and all(Path(p).is_file() for p in printed)
    assert any(p.endswith("report.md") for p in printed)
    stderr = " ".join(plain.stderr.split())
    assert "scored 2 of 2 records" in stderr and "em 0.500" in stderr  # the summary's headline: one of two

    as_json = runner.invoke(app, ["score", str(outputs), "--out", str(tmp_path / "b"), "--json", "--quiet"])
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.stdout)
    assert document["status"] == "succeeded" and document["results"] == str(tmp_path / "b" / "results.jsonl")
    assert [(r["task"], r["model"], r["metric"], r["value"]) for r in document["summary"]] == [
        ("xquad", "external/mine", "em", 0.5)
    ]
    assert as_json.stderr == ""

    bad = runner.invoke(app, ["score", str(tmp_path / "missing.csv"), "--json"])
    assert bad.exit_code == 2 and json.loads(bad.stdout)["status"] == "bad_input"
