"""`polyglot-serve <service>` is generated from the catalog and the settings classes; ports live in the catalog only."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from flows.cli import app
from flows.config import ServicesConfig
from services.common import serve
from services.common.catalog import SERVICES
from services.common.local import LocalServices
from services.common.serve import settings_of
from services.common.settings import ServerSettings, server_settings

ROOT = Path(__file__).resolve().parents[2]


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.common.serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_clean_env(), **(env or {})},
        cwd=ROOT,
    )


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("POLYGLOT_")}


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_setting_is_an_option_with_its_env_name(service):
    # Wide enough that no option or variable name is cut.
    result = CliRunner().invoke(app, ["serve", service, "--help"], env={"TERMINAL_WIDTH": "400", "COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    own = SERVICES[service].settings_class()
    fields = {**ServerSettings.model_fields, **own.model_fields}
    for name, field in fields.items():
        option = "--" + name.replace("_", "-")
        if field.annotation in (SecretStr, SecretStr | None):
            assert option not in result.output, f"{name} is secret: env only"
            continue
        assert option in result.output
        for env in settings_of(service)[name].env:
            assert env in result.output
    assert f"POLYGLOT_{service.upper()}_PORT" in result.output and str(SERVICES[service].port) in result.output


def test_the_judge_api_key_is_env_only():
    assert "api_key" not in settings_of("judge")
    assert "--api-key" not in CliRunner().invoke(app, ["serve", "judge", "--help"]).output


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["lid", "--max-batch", "0"], {}, "lid: --max-batch (env POLYGLOT_LID_MAX_BATCH): "),
        (["lid", "--port", "x"], {}, "lid: --port (env POLYGLOT_LID_PORT or POLYGLOT_PORT): "),
        (["generator", "--backend", "tgi"], {}, "generator: --backend (env POLYGLOT_GENERATOR_BACKEND): "),
        (["trainer"], {"POLYGLOT_TRAINER_MAX_CONCURRENT_JOBS": "0"}, "trainer: --max-concurrent-jobs (env "),
        (["judge", "--concurrency", "0"], {}, "judge: --concurrency (env POLYGLOT_JUDGE_CONCURRENCY): "),
        (["lid", "--workers", "-1"], {}, "lid: --workers (env POLYGLOT_LID_WORKERS): "),
        (["judge"], {"POLYGLOT_JUDGE_TOTAL_BUDGET_USD": "-5"}, "judge: --total-budget-usd (env "),
    ],
)
def test_a_bad_setting_exits_2_naming_the_option_and_its_env(args, env, expected):
    result = _serve(*args, env=env)
    assert result.returncode == 2
    assert f"error: {expected}" in result.stderr and "Traceback" not in result.stderr


def test_cli_overrides_env_overrides_default(monkeypatch):
    from services.common.serve import load_settings

    monkeypatch.setenv("POLYGLOT_PORT", "7000")
    monkeypatch.setenv("POLYGLOT_LID_PORT", "7001")
    monkeypatch.setenv("POLYGLOT_LID_MAX_BATCH", "5")
    server, lid = load_settings("lid", {})
    assert (server.port, server.metrics_port, lid.max_batch) == (7001, SERVICES["lid"].metrics_port, 5)
    server, lid = load_settings("lid", {"port": 7002, "max_batch": 6})
    assert (server.port, lid.max_batch) == (7002, 6)


def test_the_services_entry_imports_no_flows():
    code = "import sys, services.common.serve, services.common.local; print(' '.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert not [m for m in loaded.stdout.split() if m == "flows" or m.startswith("flows.")]


def test_ports_and_addresses_derive_from_the_catalog():
    assert list(ServicesConfig.model_fields) == list(SERVICES)
    assert ServicesConfig().model_dump() == {n: f"127.0.0.1:{s.port}" for n, s in SERVICES.items()}
    for name, spec in SERVICES.items():
        settings = server_settings(name)
        assert (settings.port, settings.metrics_port) == (spec.port, spec.metrics_port)
        assert spec.settings_class() and spec.client_class() and callable(spec.build_function())
    assert LocalServices(list(SERVICES)).addresses == ServicesConfig().model_dump()
    assert LocalServices(["lid", "judge"], base_port=6000).addresses == {
        "lid": "127.0.0.1:6000",
        "judge": "127.0.0.1:6002",
    }


def _port_literals(path: Path) -> list[int]:
    """Integer literals in `path` that equal a catalog port (docstrings and examples in strings don't count)."""
    ports = {p for s in SERVICES.values() for p in (s.port, s.metrics_port)}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and type(n.value) is int and n.value in ports
    ]


def test_the_catalog_is_the_only_place_ports_are_declared():
    offenders = {
        str(path.relative_to(ROOT)): found
        for package in ("services", "flows")
        for path in (ROOT / package).rglob("*.py")
        if path.name != "catalog.py" and "__pycache__" not in path.parts and (found := _port_literals(path))
    }
    assert not offenders


def test_version_prints_the_package_version_and_h_is_help():
    result = _serve("--version")
    assert (result.returncode, result.stdout) == (0, f"polyglot {importlib.metadata.version('polyglot')}\n")
    for args in ([], *([service] for service in SERVICES)):  # the app and each generated command
        short, long = (CliRunner().invoke(serve.app, [*args, option]) for option in ("-h", "--help"))
        assert (short.exit_code, short.output) == (0, long.output), args
