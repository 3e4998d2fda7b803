"""The GPU check's dry run, as CI makes it: `bench/gpu_check.py --device cpu --tiny` runs every part with
the tiny shape (vLLM only where importable, else skipped with its reason) and records it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_dry_run_exercises_every_part_and_records_it(tmp_path: Path, shared_dir: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "POLYGLOT_SHARED_DIR": str(shared_dir)}
    cmd = [sys.executable, "bench/gpu_check.py", "--device", "cpu", "--tiny", "--train-steps", "2"]
    cmd += ["--out", str(tmp_path)]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]

    record = json.loads((tmp_path / "gpu_check.cpu-tiny.json").read_text())
    assert "stopped" not in record
    parts = record["parts"]
    for name in ("build", "generator_hf", "trainer"):
        assert "error" not in parts[name] and "skipped" not in parts[name], (name, parts[name])
    if importlib.util.find_spec("vllm") is None:
        assert "not importable" in parts["vllm"]["skipped"]
    else:
        assert "error" not in parts["vllm"]
    assert record["checks"] and all(record["checks"].values()), record["checks"]

    generate, score = parts["generator_hf"]["generate"], parts["generator_hf"]["score"]
    assert generate["service_grpc"]["tokens_per_s"] > 0 and generate["plain_generate"]["tokens_per_s"] > 0
    assert generate["same_text_share"] == 1.0  # float32 on CPU: the service's greedy text is plain generate's
    assert score["max_abs_logprob_diff"] < 1e-3  # the service scores as one batched forward pass does
    trainer = parts["trainer"]
    assert trainer["recipe"]["padding_free"] is True
    for run_name in ("service_job", "plain_trl"):
        measured = trainer[run_name]
        assert measured["s_per_step"] > 0 and measured["non_padding_tokens_per_s"] > 0
        assert measured["peak_memory_gib"] > 0 and measured["hours_for_2000_steps_of_64"] > 0
        assert measured["mfu"] is None  # no peak FLOPs for a CPU, and the record says so
    assert "MFU not computed" in record["peak_flops"]
    # Only a GPU run offers figures to `polyglot plan --gpus`; the section it would write fits the planner.
    assert "plan_figures" not in record
    from bench.gpu_check import plan_figures
    from flows.plan_cluster import PlanFigures

    figures = PlanFigures.model_validate(plan_figures(record))
    assert figures.train_batch == trainer["recipe"]["effective_batch_size"] and figures.prefill_tokens_per_second
    report = (tmp_path / "gpu_check.cpu-tiny.md").read_text()
    assert "## Generator, hf backend" in report and "## Trainer" in report
