"""The local commands as real processes on loopback: preflight, health reasons, own ports only, stop signals."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from services.common.catalog import SERVICES
from services.common.local import free_port
from tests.fixtures.processes import alive

CONFIG = Path(__file__).parents[1] / "e2e" / "study_e2e.yaml"


def _polyglot(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )



def _table(output: str) -> dict[str, tuple[int, int]]:
    """`polyglot up`'s table: service → (port, pid)."""
    rows = re.findall(r"│ (\w+)\s+│ 127\.0\.0\.1:(\d+)\s+│ (\d+)\s+│", output)
    return {name: (int(port), int(pid)) for name, port, pid in rows}


def test_health_says_why_in_one_line():
    port = free_port()
    result = _polyglot("health", f"127.0.0.1:{port}", "--timeout", "0.5")
    assert result.returncode == 1
    assert result.stderr.strip() == f"127.0.0.1:{port} not SERVING after 0.5 s: nothing listening (connection refused)"


def test_an_out_of_range_port_is_refused_at_parse_time():
    result = _polyglot("health", "localhost:99999")
    assert result.returncode == 2
    assert "addresses" in result.stderr and "1..65535" in result.stderr


def test_preflight_names_a_service_that_is_down_and_a_hub_that_is_off(tmp_path):
    """With --no-services and nothing listening, the run stops in seconds with one line per problem."""
    lid = f"127.0.0.1:{free_port()}"
    sets = [f"--set=services.{name}=127.0.0.1:{free_port()}" for name in SERVICES if name != "lid"]
    started = time.monotonic()
    result = _polyglot(
        "study", "run", str(CONFIG), "--no-services", "--state-dir", str(tmp_path / "state"),
        f"--set=services.lid={lid}", *sets, f"--set=artifact_store=file://{tmp_path / 'store'}",
        "--set=data.conversations.source=no-such-org/no-such-data",
        env={"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert elapsed < 10
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith(f"error: lid at {lid}: nothing listening") for line in lines), lines
    assert any("no-such-org/no-such-data" in line and "HF_HUB_OFFLINE=1" in line for line in lines), lines
    assert len(lines) == len(SERVICES) + 1  # one line per problem, no traceback
    assert not (tmp_path / "state").exists()  # nothing was started or built


@pytest.fixture
def default_ports_taken():
    """Unrelated listeners on the default ports of lid and judge (a port already busy stays busy)."""
    with ExitStack() as stack:
        for name in ("lid", "judge"):
            sock = stack.enter_context(socket.socket())
            try:
                sock.bind(("127.0.0.1", SERVICES[name].port))
                sock.listen()
            except OSError:
                pass  # someone else holds it: just as busy
        yield {SERVICES[name].port for name in ("lid", "judge")}


@pytest.mark.slow
def test_up_never_uses_a_busy_default_port(default_ports_taken, tmp_path):
    result = _polyglot("up", "--only", "lid", "--only", "judge", "--check", "--log-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = _table(result.stderr)
    assert set(rows) == {"lid", "judge"}, result.stderr
    assert not {port for port, _ in rows.values()} & default_ports_taken
    for port in default_ports_taken:
        assert f"port {port} is in use by another process" in result.stderr
    assert not [pid for _, pid in rows.values() if alive(pid)], "--check left a service running"


@pytest.mark.slow
def test_up_stops_its_services_on_sighup(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "up", "--only", "lid", "--base-port", str(free_port()),
         "--log-dir", str(tmp_path)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    output = ""
    while "Ctrl-C stops them" not in output:
        line = proc.stderr.readline()
        assert line, f"up ended early: {output}"
        output += line
    ((_, pid),) = _table(output).values()
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=30) == 0
    assert not alive(pid)
