"""`polyglot plan --gpus N`: GPU-hours and wall-clock per phase on a cluster, from GPU figures measured in
bench/results/ where there are any (saying which), never from the CPU runs on the tiny model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.config import load_config
from flows.plan import Assumptions, plan_study
from flows.plan_cluster import RESULTS_DIR, cluster_estimate, measured_figures


def test_gpu_figures_in_results_replace_the_assumptions_scaled_to_the_reference_size(tmp_path):
    figures = {"gpu": "NVIDIA H200", "params_b": 14.0, "generation_tokens_per_second": 2400.0,
               "train_seconds_per_step": 4.0, "train_batch": 32}  # fmt: skip
    (tmp_path / "generator.gpu.json").write_text(json.dumps({"plan_figures": figures, "other": 1}))
    (tmp_path / "generator.json").write_text(json.dumps({"benchmark": "generator"}))  # a CPU run: no figures
    measured = measured_figures(tmp_path)
    a = measured.assumptions
    assert a.generation_tokens_per_second == pytest.approx(2400 * 2)  # a 7B model decodes twice as fast
    assert a.train_seconds_per_step == pytest.approx(4.0 / 2 * 64 / 32)  # half the size, twice the batch
    assert a.prefill_tokens_per_second == Assumptions().prefill_tokens_per_second
    assert measured.sources["generation"].startswith("measured: generator.gpu.json, 2,400 new tokens/s on NVIDIA H200")
    assert measured.sources["training"].startswith("measured: generator.gpu.json")
    assert measured.sources["scoring"].startswith("no measured figure: assumed 10,000 prompt tokens/s")
    assert measured.unused == ["generator.json"]


def test_a_malformed_figures_section_is_named_and_not_used(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"plan_figures": {"gpu": "H200", "params_b": -1}}))
    measured = measured_figures(tmp_path)
    assert measured.assumptions == Assumptions()
    assert measured.unused[0].startswith("bad.json (unreadable plan_figures")


def test_wall_clock_follows_the_gpus_and_the_studys_concurrency(repo_root):
    path = repo_root / "configs" / "paper-llama2-7b.yaml"
    sources = measured_figures(RESULTS_DIR).sources
    serial = cluster_estimate(plan_study(load_config(path)), 8, sources)
    wide_cfg = load_config(path, {"concurrency.trainer": 8, "concurrency.generator": 8})
    wide_plan = plan_study(wide_cfg)
    wide = cluster_estimate(wide_plan, 8, sources)
    job_hours = wide_plan.training_jobs[0].gpu_hours
    # 7 equal jobs: one at a time (concurrency.trainer 1), or all at once on 8 GPUs.
    assert serial.phases[0].wall_hours == pytest.approx(7 * job_hours)
    assert wide.phases[0].wall_hours == pytest.approx(job_hours) and wide.phases[0].at_once == 8
    generation = wide.phases[1]
    assert generation.gpu_hours == pytest.approx(serial.phases[1].gpu_hours)  # the same work either way
    assert generation.wall_hours == pytest.approx(generation.gpu_hours / 8)
    assert wide.gpu_hours == pytest.approx(wide_plan.gpu_hours["total"])
    assert any("concurrency.trainer" in note for note in serial.notes)
    assert not any("concurrency" in note for note in wide.notes)


def test_plan_with_gpus_prints_each_phase_with_the_figure_it_used(repo_root):
    paper = str(repo_root / "configs" / "paper-llama2-7b.yaml")
    result = CliRunner().invoke(app, ["plan", paper, "--gpus", "8"], terminal_width=240)
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.replace("│", " ").split())
    assert "Cluster: 8 GPUs" in shown and "wall-clock h" in shown and "GPU-hours" in shown
    for phase, source in measured_figures(RESULTS_DIR).sources.items():
        assert f"{phase} " in shown and source in shown
    refused = CliRunner().invoke(app, ["plan", paper, "--gpus", "0"])
    assert refused.exit_code == 2 and "--gpus" in refused.output
