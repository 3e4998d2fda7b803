"""The `polyglot` command line: bad options and bad configs exit 2 naming what is wrong."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
import typer
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


def test_config_schema_lists_every_task_option_and_the_recipe():
    table = runner.invoke(app, ["config", "schema"])
    assert table.exit_code == 0
    assert "| `evaluation.tasks.xquad.modes` |" in table.output and "| `training.lora_r` |" in table.output
    schema = runner.invoke(app, ["config", "schema", "--json"])
    assert schema.exit_code == 0 and "StudyConfig" in schema.output


def test_version_prints_the_package_version():
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.output) == (0, f"polyglot {importlib.metadata.version('polyglot')}\n")


def _command_paths(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        if sub.context_settings.get("help_option_names") != []:  # lm-eval: every argument is lm-eval's
            yield from _command_paths(sub, (*path, name))


def test_h_is_help_on_every_command_and_group():
    paths = list(_command_paths(typer.main.get_command(app)))
    assert ("data", "build") in paths and ("serve", "lid") in paths
    for path in paths:
        short, long = runner.invoke(app, [*path, "-h"]), runner.invoke(app, [*path, "--help"])
        assert (short.exit_code, short.output) == (0, long.output), path
