"""Offline, a paper config fails before any service starts: one message naming what to fetch and how (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.config.lid import OPENLID_URL

ROOT = Path(__file__).resolve().parents[3]


def test_paper_config_without_its_files_fails_fast_with_one_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POLYGLOT_PAPER_SOURCES", str(tmp_path / "no-sources"))
    monkeypatch.setenv("POLYGLOT_OPENLID_MODEL", str(tmp_path / "lid" / "lid201-model.bin"))
    result = CliRunner().invoke(
        app, ["study", "run", str(ROOT / "configs/paper-llama2-7b.yaml"), "--state-dir", str(tmp_path / "state")]
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "polyglot protocol fetch" in result.output
    assert OPENLID_URL in result.output
    assert not (tmp_path / "state").exists()  # nothing was started, not even the state directory
