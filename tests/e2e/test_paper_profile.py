"""A study on the paper profile, end to end on the tiny random Llama: `polyglot study run` starts the four
services, trains Mono, evaluates chat (805-style generation with a judged sample), XQuAD (the paper's
templates and decoding) and XNLI (the test split, lm-eval 0.3's requests), and writes the report with the
protocol-fidelity appendix. The paper's sources are fixtures; lid.176 stands in for OpenLID."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.paper_repo import install_fixture_sources

CONFIG = Path(__file__).with_name("paper_profile_e2e.yaml")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def lid176() -> Path:
    import importlib.util

    from services.lid.core import EMBEDDED_MODEL

    package, resource = EMBEDDED_MODEL
    return Path(next(iter(importlib.util.find_spec(package).submodule_search_locations))) / resource


def test_paper_profile_study_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fixture_sources(tmp_path / "paper", monkeypatch)  # sets POLYGLOT_PAPER_SOURCES / _PINS
    xnli = tmp_path / "xnli"
    xnli.mkdir()
    (xnli / "xnli_test-en.tsv").write_text(
        "".join(f"A man plays {i} songs.\tA person makes music.\t{label}\n"
                for i, label in enumerate(["entailment", "neutral", "contradiction"] * 2)),  # fmt: skip
        encoding="utf-8",
    )
    env = {**os.environ, "POLYGLOT_OPENLID_MODEL": str(lid176()), "POLYGLOT_TRAINER_TORCH_THREADS": "1",
           "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    command = [
        sys.executable, "-m", "flows.cli", "study", "run", str(CONFIG), "--json",
        "--state-dir", str(tmp_path / "state"), "--out", str(tmp_path / "report"),
        f"--set=artifact_store={(tmp_path / 'store').as_uri()}",
        f"--set=evaluation.tasks.xnli.data_dir={xnli}",
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout)
    (tmp_path / "summary.json").write_text(result.stdout)
    assert summary["status"] == "succeeded"
    text = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "## Protocol fidelity" in text and "protocol profile `paper`" in text
    assert '| xnli-split | `"test"` | `"test"` |' in text
    assert {row["task"] for row in summary["summary"]} == {"chat", "xquad", "xnli"}
    assert summary["shards"]["done"] == summary["shards"]["planned"] == 3
    # Chat: both generated replies get their language checks, the judged sample of one its helpfulness.
    rows = json.loads((tmp_path / "report" / "aggregate.json").read_text(encoding="utf-8"))["rows"]
    chat = {row["metric"]: row["n_items"] for row in rows if row["task"] == "chat"}
    assert chat["helpfulness"] == 1 and chat["lang_match"] == 2
