"""Scaling settings hold together: replica addresses become gRPC targets, servers age their connections,
and a study's `concurrency` section reaches its per-service bounds, its task runner and its plan."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flows import steps, study
from flows.cli import app
from flows.config import load_config
from services.common.catalog import SERVICES
from services.common.config.types import parse_address
from services.common.server import _server_options
from services.common.settings import ServerSettings


@pytest.mark.parametrize(
    ("address", "target"),
    [
        ("127.0.0.1:50051", "127.0.0.1:50051"),
        ("127.0.0.1:5001,127.0.0.1:5002", "ipv4:127.0.0.1:5001,127.0.0.1:5002"),
        ("10.0.0.1:5001, 10.0.0.2:5001", "ipv4:10.0.0.1:5001,10.0.0.2:5001"),
        ("[::1]:5001,[::1]:5002", "ipv6:[::1]:5001,[::1]:5002"),
        ("ipv4:127.0.0.1:5001,127.0.0.1:5002", "ipv4:127.0.0.1:5001,127.0.0.1:5002"),
        ("dns:///lid-headless:50051", "dns:///lid-headless:50051"),
    ],
)
def test_a_list_of_replicas_is_the_grpc_target_that_names_them(address, target):
    assert parse_address(address) == target


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("lid-a:5001,lid-b:5001", "dns:///name:port"),  # gRPC lists only IP literals
        ("127.0.0.1:5001,[::1]:5002", "one family"),
        ("127.0.0.1:5001,127.0.0.1", "expected host:port"),
        ("127.0.0.1:5001,127.0.0.1:0", "out of range"),
    ],
)
def test_a_bad_list_of_replicas_is_refused_naming_the_fix(address, message):
    with pytest.raises(ValueError, match=message):
        parse_address(address)


def test_servers_close_connections_at_the_configured_age_and_accept_client_keepalives():
    assert "grpc.max_connection_age_ms" not in dict(_server_options(ServerSettings()))  # by default: never
    options = dict(_server_options(ServerSettings(max_connection_age_seconds=300, max_connection_age_grace_seconds=30)))
    assert options["grpc.max_connection_age_ms"] == 300_000
    assert options["grpc.max_connection_age_grace_ms"] == 30_000
    assert options["grpc.keepalive_permit_without_calls"] == 1


def test_concurrency_defaults_come_from_the_catalog(repo_root):
    cfg = load_config(repo_root / "configs" / "smoke.yaml")
    assert cfg.concurrency.model_dump() == {
        "task_runner_workers": 4,
        **{name: spec.in_flight for name, spec in SERVICES.items()},
    }
    assert {name: spec.in_flight for name, spec in SERVICES.items()} == {
        "lid": 4, "generator": 2, "judge": 2, "trainer": 1
    }  # fmt: skip


def test_the_configs_concurrency_reaches_the_service_slots_and_the_task_runner(repo_root):
    overrides = {"concurrency.lid": 7, "concurrency.generator": 3, "concurrency.task_runner_workers": 6}
    cfg = load_config(repo_root / "configs" / "smoke.yaml", overrides)
    slots = steps.service_slots(cfg.concurrency)
    assert {name: slot._initial_value for name, slot in slots.items()} == {
        "lid": 7, "generator": 3, "judge": 2, "trainer": 1
    }  # fmt: skip
    assert steps.service_slots(cfg.concurrency) is slots  # every task of the study shares them
    for subflow in (study.prepare, study.train_all, study.evaluate_all):
        assert study.sized(subflow, cfg).task_runner._max_workers == 6
    with pytest.raises(Exception, match="greater than or equal to 1"):
        load_config(repo_root / "configs" / "smoke.yaml", {"concurrency.judge": 0})


def test_plan_shows_the_concurrency(repo_root):
    smoke = str(repo_root / "configs" / "smoke.yaml")
    result = CliRunner().invoke(app, ["plan", smoke, "--set", "concurrency.judge=5"])
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.replace("│", " ").split())
    assert "concurrency: 4 tasks at once; calls in flight: lid 4, generator 2, judge 5, trainer 1" in shown
