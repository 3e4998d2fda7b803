"""A finished study reruns from its artifacts: first run vs rerun of the same study, same services.

The services start once (child processes on free loopback ports); Prefect's temporary API is warmed by a
no-op flow first, so neither timing includes its start-up. The study is the README's smoke study
(configs/smoke.yaml; POLYGLOT_BENCH_STUDY_CONFIG picks another) on the tiny random Llama — a pipeline
check, not a quality result. Goal: the
rerun is at least 10x faster (it makes no training, generation or judge call).

    python -m bench study
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The README's smoke study by default; POLYGLOT_BENCH_STUDY_CONFIG=tests/e2e/study_e2e.yaml for the CI cut-down.
CONFIG = ROOT / os.environ.get("POLYGLOT_BENCH_STUDY_CONFIG", "configs/smoke.yaml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(out_dir: Path) -> dict:
    from flows.config import load_config
    from flows.local import materialise_models, prefect_env, service_env
    from services.common.catalog import SERVICES
    from services.common.local import LocalServices

    tmp = Path(tempfile.mkdtemp(prefix="bench-study-"))
    os.environ.update(prefect_env(tmp / "state"))
    from prefect import flow

    from flows.study import study

    ports = {name: _free_port() for name in SERVICES}
    overrides = {f"services.{n}": f"127.0.0.1:{p}" for n, p in ports.items()}
    overrides["artifact_store"] = (tmp / "artifacts").as_uri()
    cfg = load_config(CONFIG, overrides)
    refs = materialise_models(cfg, tmp / "state")

    @flow
    def warm_up() -> int:
        return 0

    warm_up()
    env = {**os.environ, **service_env(cfg, refs, tmp / "state")}
    (tmp / "logs").mkdir()
    with LocalServices(list(SERVICES), ports=ports, env=env, log_dir=tmp / "logs") as services:
        services.wait_healthy(timeout=300)
        timings = []
        for run in ("first", "rerun"):
            started = time.perf_counter()
            study(str(CONFIG), base_models=refs, out_dir=str(tmp / f"report-{run}"), overrides=overrides)
            timings.append(time.perf_counter() - started)
    first, rerun = timings
    same = json.loads((tmp / "report-first" / "aggregate.json").read_text()) == json.loads(
        (tmp / "report-rerun" / "aggregate.json").read_text()
    )
    summary = {
        "config": str(CONFIG.relative_to(ROOT)),
        "first_run_s": round(first, 1),
        "rerun_s": round(rerun, 1),
        "speedup": round(first / rerun, 1),
        "goal": ">= 10x",
        "same_aggregate": same,
        "model": "tiny random Llama (pipeline check, not a result)",
    }
    name = "study" if CONFIG.name == "smoke.yaml" else f"study-{CONFIG.stem}"
    (out_dir / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / f"{name}.md").write_text(
        "# Study rerun benchmark\n\n"
        f"Config `{summary['config']}`, services started once, Prefect warmed up first.\n\n"
        "| run | wall time (s) |\n|---|---|\n"
        f"| first | {summary['first_run_s']} |\n| rerun (all artifacts present) | {summary['rerun_s']} |\n\n"
        f"Speed-up **{summary['speedup']}x** (goal >= 10x); identical aggregate: {same}.\n"
    )
    return summary
