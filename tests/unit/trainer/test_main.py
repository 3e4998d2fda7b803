"""`polyglot serve trainer` options and POLYGLOT_TRAINER_* settings."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app
from services.trainer.settings import TrainerSettings


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYGLOT_TRAINER_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("POLYGLOT_TRAINER_MAX_CONCURRENT_JOBS", "3")
    monkeypatch.setenv("POLYGLOT_TRAINER_RESUME_ON_RESTART", "false")
    settings = TrainerSettings()
    assert (settings.state_dir, settings.max_concurrent_jobs, settings.resume_on_restart) == (tmp_path, 3, False)
    assert settings.jobs_dir == tmp_path / "jobs"


def test_defaults(monkeypatch):
    for name in [n for n in os.environ if n.startswith("POLYGLOT_TRAINER_")]:
        monkeypatch.delenv(name)
    settings = TrainerSettings()
    assert settings.state_dir == Path(".polyglot/trainer") and settings.max_concurrent_jobs == 1
    assert settings.resume_on_restart is True


def test_cli_documents_and_checks_the_trainer_options():
    runner = CliRunner()
    help_text = runner.invoke(app, ["serve", "trainer", "--help"]).output
    assert "--state-dir" in help_text and "--max-concurrent" in help_text
    result = runner.invoke(app, ["serve", "trainer", "--max-concurrent-jobs", "0"])
    assert result.exit_code == 2
