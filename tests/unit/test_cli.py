"""The `polyglot` command line: bad options and bad configs exit 2 naming what is wrong."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from flows.cli import app
from services.common.catalog import SERVICES

runner = CliRunner()


def _polyglot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_port_that_is_not_a_number_exits_2_naming_the_option():
    result = _polyglot("serve", "lid", "--port", "notanumber")
    assert result.returncode == 2
    assert "--port" in result.stderr


@pytest.mark.parametrize("service", list(SERVICES))
def test_serve_help_for_every_service(service):
    result = runner.invoke(app, ["serve", service, "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: demo\nseeds: [0, 42\n", ("study.yaml", "YAML")),  # malformed YAML: the file and line
        ("name: demo\nseeds: [0, forty-two]\n", ("seeds[1]", ":2")),  # a wrong field: the field and line
    ],
)
def test_a_bad_config_exits_2_naming_where(tmp_path, text, expected):
    bad = tmp_path / "study.yaml"
    bad.write_text(text)
    result = _polyglot("config", "check", str(bad))
    assert result.returncode == 2
    assert all(part in result.stderr for part in expected)


def test_unknown_service_for_up_exits_2():
    result = runner.invoke(app, ["up", "--only", "nope"])
    assert result.exit_code == 2
    assert "--only" in result.output


def test_smoke_config_checks_ok(repo_root):
    result = _polyglot("config", "check", str(repo_root / "configs" / "smoke.yaml"))
    assert result.returncode == 0, result.stderr


def test_config_check_takes_several_files_overrides_and_tasks(repo_root, tmp_path):
    smoke = str(repo_root / "configs" / "smoke.yaml")
    bad = tmp_path / "study.yaml"
    bad.write_text("name: demo\nbase_models: [{name: m, model: ./absent}]\nevaluation: {tasks: {chat: }}\n")
    result = runner.invoke(app, ["config", "check", smoke, str(bad)])
    text = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 2
    assert "ok" in text and "study.yaml:2: base_models[0].model: no such file" in text
    result = runner.invoke(app, ["config", "check", smoke, "--set", "evaluation.tasks.chat=null", "--tasks", "chat"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["config", "check", smoke, "--tasks", "chat,nope"])
    assert result.exit_code == 2
    assert "--tasks" in result.output and "unknown evaluation task 'nope'" in result.output


def test_plan_runs_only_the_tasks_named(repo_root):
    result = runner.invoke(app, ["plan", str(repo_root / "configs" / "smoke.yaml"), "--tasks", "xnli"])
    assert result.exit_code == 0, result.output
    rows = {task: re.search(rf"│ {task}\s*│", result.output) for task in ("chat", "xquad", "xcsqa", "xnli")}
    assert [task for task, row in rows.items() if row] == ["xnli"]
    result = runner.invoke(app, ["plan", str(repo_root / "configs" / "smoke.yaml"), "--tasks", " , "])
    assert result.exit_code == 2 and "--tasks" in result.output
