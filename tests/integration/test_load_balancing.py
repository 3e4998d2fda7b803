"""Replicas on loopback: one typed client spreads its calls over every address of its target, and servers
that close connections at their age make clients reconnect, so a replica that comes up later takes calls."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import grpc
import pytest
from polyglot.v1 import lid_pb2_grpc

from services.common.client import channel_options
from services.common.inprocess import serve_in_thread
from services.common.server import Registration
from services.common.settings import ServerSettings
from services.lid.client import AsyncLidClient, LidClient
from services.lid.servicer import LidServicer
from tests.fixtures.dns import dns_server

CALLS = 40


class CountingLid(LidServicer):
    """The real lid servicer, counting the Identify calls it answers and the connections they came on."""

    def __init__(self, identifier):
        super().__init__(identifier)
        self.calls = 0
        self.peers: set[str] = set()  # "ipv4:127.0.0.1:<client port>": one per connection

    async def Identify(self, request, context):
        self.calls += 1
        self.peers.add(context.peer())
        return await super().Identify(request, context)


@contextlib.contextmanager
def replica(identifier, port: int = 0, **settings) -> Iterator[tuple[CountingLid, str]]:
    servicer = CountingLid(identifier)
    # The identifier is the session's: stopping one replica must not close it.
    registration = Registration(
        servicer, lid_pb2_grpc.add_LidServiceServicer_to_server, "polyglot.v1.LidService", close_on_stop=False
    )
    with serve_in_thread([registration], ServerSettings(port=port, metrics_port=0, **settings)) as address:
        yield servicer, address


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def until(condition, timeout: float, step) -> None:
    """Call `step` until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        step()


def test_one_client_spreads_its_calls_evenly_over_a_list_of_replicas(lid_identifier):
    with replica(lid_identifier) as (a, first), replica(lid_identifier) as (b, second):
        with LidClient(f"{first},{second}", timeout=10, retries=1) as client:
            # round_robin picks among connected replicas: wait until both are, then count.
            until(lambda: a.calls and b.calls, 10, lambda: client.identify(["hallo welt"]))
            a.calls = b.calls = 0
            for _ in range(CALLS):
                client.identify(["hallo welt"])
        assert a.calls + b.calls == CALLS
        assert abs(a.calls - b.calls) <= CALLS // 10, (a.calls, b.calls)


async def test_the_async_client_spreads_its_calls_too(lid_identifier):
    with replica(lid_identifier) as (a, first), replica(lid_identifier) as (b, second):
        async with AsyncLidClient(f"{first},{second}", timeout=10, retries=1) as client:
            deadline = time.monotonic() + 10
            while not (a.calls and b.calls):
                assert time.monotonic() < deadline, "timed out"
                await client.identify(["hallo welt"])
            a.calls = b.calls = 0
            for _ in range(CALLS):
                await client.identify(["hallo welt"])
        assert abs(a.calls - b.calls) <= CALLS // 10, (a.calls, b.calls)


@pytest.mark.parametrize("age", [None, 0.5])
def test_servers_close_connections_at_their_age_and_busy_clients_reconnect_without_a_failed_call(lid_identifier, age):
    with (
        replica(lid_identifier, max_connection_age_seconds=age) as (server, address),
        LidClient(address, timeout=10, retries=1) as client,  # retries=1: a dropped call would fail here
    ):
        started = time.monotonic()
        while time.monotonic() - started < 2.0:
            client.identify(["hallo welt"])
    # Without an age one connection carries everything; with 0.5 s, about one per half second (±10% jitter).
    assert len(server.peers) == 1 if age is None else len(server.peers) >= 3, server.peers


def test_a_listed_replica_that_starts_while_the_client_is_busy_takes_calls(lid_identifier):
    # A static list names every replica up front: the channel keeps retrying the one not up yet (with
    # back-off), so no connection age is needed here.
    late_port = free_port()
    with (
        replica(lid_identifier) as (early, first),
        LidClient(f"{first},127.0.0.1:{late_port}", timeout=10, retries=1) as client,
    ):
        for _ in range(10):
            client.identify(["hallo welt"])
        assert early.calls == 10  # nothing listens at the second address yet
        with replica(lid_identifier, late_port) as (late, _):
            until(lambda: late.calls, 5, lambda: client.identify(["hallo welt"]))


@pytest.mark.parametrize("age", [None, 1.0])
def test_a_replica_dns_adds_while_the_client_is_busy_takes_calls_within_the_connection_age(lid_identifier, age):
    """A headless Service on loopback: one name, one port, a replica per address (127.0.0.1, then also
    127.0.0.2). gRPC asks DNS again only when a connection ends, so the connection age is what brings the
    new replica in; without one the client stays on the first."""
    port = free_port()
    with (
        dns_server({"lid.test": ["127.0.0.1"]}) as dns,
        replica(lid_identifier, port, max_connection_age_seconds=age) as (early, _),
    ):
        # The client's own options, plus re-resolution allowed at once (gRPC's default waits 30 s between
        # resolutions, well inside a cluster's 300 s age but not a test's).
        options = [*channel_options(), ("grpc.dns_min_time_between_resolutions_ms", 100)]
        channel = grpc.insecure_channel(f"dns://{dns.address}/lid.test:{port}", options=options)
        with LidClient(channel=channel, timeout=10, retries=1) as client:
            for _ in range(10):
                client.identify(["hallo welt"])
            with replica(lid_identifier, port, host="127.0.0.2", max_connection_age_seconds=age) as (late, _):
                dns.records["lid.test"] = ["127.0.0.1", "127.0.0.2"]  # a pod became ready
                started = time.monotonic()
                if age is None:
                    while time.monotonic() - started < 2.0:
                        client.identify(["hallo welt"])
                    assert late.calls == 0
                    return
                until(lambda: late.calls, 3 * age, lambda: client.identify(["hallo welt"]))
                took = time.monotonic() - started
                early.calls = late.calls = 0
                for _ in range(CALLS):
                    client.identify(["hallo welt"])
    assert took < 2 * age  # the age has ±10% jitter; reconnecting takes milliseconds
    assert abs(early.calls - late.calls) <= CALLS // 10, (early.calls, late.calls)
