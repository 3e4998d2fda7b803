"""Local runs use only their own services: port choice, socket ownership, addresses, hub access, the stop switch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from flows import cancel
from flows.config import load_config
from flows.preflight import hub_ids, set_hub_access
from services.common.config.types import parse_address
from services.common.errors import FailedPrecondition
from services.common.local import choose_ports, free_port, listens, port_free


@pytest.fixture
def squatter():
    """An unrelated listener on a loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_busy_default_port_moves_and_a_chosen_one_is_refused(squatter):
    lines = []
    moved = choose_ports({"lid": squatter}, movable={"lid"}, log=lines.append)
    assert moved["lid"] != squatter and port_free(moved["lid"])
    assert f"port {squatter} is in use" in lines[0]
    with pytest.raises(FailedPrecondition, match=f"lid: port {squatter} is in use"):
        choose_ports({"lid": squatter}, movable=set())


def test_a_free_port_is_kept():
    port = free_port()
    assert choose_ports({"lid": port}, movable={"lid"}) == {"lid": port}


@pytest.mark.skipif(sys.platform != "linux", reason="ownership is read from /proc")
def test_listens_tells_the_owner_of_a_listening_socket(squatter):
    assert listens(os.getpid(), squatter)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not listens(other.pid, squatter)
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("value", ["localhost:99999", "localhost:0", "localhost", "a b:1"])
def test_bad_addresses_are_refused(value):
    with pytest.raises(ValueError):
        parse_address(value)


def test_hub_ids_and_hub_access(repo_root, monkeypatch):
    local = load_config(repo_root / "tests" / "e2e" / "study_e2e.yaml")
    assert hub_ids(local) == []
    hub = load_config(
        repo_root / "tests" / "e2e" / "study_e2e.yaml", {"data.conversations.source": "no-such-org/no-such-data"}
    )
    assert hub_ids(hub) == ["no-such-org/no-such-data"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    set_hub_access(hub, None)  # needs the hub and the user did not say offline: online
    assert "HF_HUB_OFFLINE" not in os.environ
    set_hub_access(hub, "1")  # the user's word wins
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    set_hub_access(local, None)  # no hub needed: offline
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_the_stop_switch_closes_tracked_clients(monkeypatch):
    monkeypatch.setattr(cancel, "_requested", type(cancel._requested)())
    monkeypatch.setattr(cancel, "_open", [])

    class Clients:
        closed = 0

        def close(self):
            self.closed += 1

    first = cancel.track(Clients())
    cancel.request()
    assert first.closed == 1 and cancel.requested()
    with pytest.raises(Exception, match="interrupted"):
        cancel.raise_if_requested()
    late = cancel.track(Clients())  # opened after the interrupt: closed at once
    assert late.closed == 1
