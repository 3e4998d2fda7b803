"""Row 15: no idle or keepalive limits; 20,000 idle connections made health checks time out. Reproduced
before the fix: connections that never spoke, or spoke HTTP/2 and then went quiet, stayed open for as long
as the peer liked (until gRPC's 120 s handshake default at best), each holding a file descriptor, so enough
of them left none for a probe.

Remedy (services/common/server.py, settings.py): a connection that has not finished its handshake within
`handshake_timeout_seconds` is closed, one without a call for `max_connection_idle_seconds` gets GOAWAY
and is closed, open connections are capped by `max_connections` (within the open-file limit), and quiet
peers are pinged. Here a few hundred idle connections of both kinds are held while health keeps answering,
and the server closes every one of them after the configured timeouts. (The load figure, 1,000 idle
connections for 30 s, is `bench/bench_idle_connections.py`.)
"""

from __future__ import annotations

import socket
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from polyglot.v1 import lid_pb2_grpc

from services.common.catalog import SERVICES
from services.common.inprocess import serve_in_thread
from services.common.server import Registration
from services.common.settings import ServerSettings

SILENT, QUIET_HTTP2 = 150, 150
# The client preface and an empty SETTINGS frame: an HTTP/2 connection that then sends nothing.
HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _connect(port: int, hello: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if hello:
        sock.sendall(hello)
    return sock


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes `sock` within `within` seconds (whatever it sends first is read and dropped)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def _health(address: str) -> str:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


@pytest.fixture
def server():
    settings = ServerSettings(port=0, metrics_port=0, max_connection_idle_seconds=1.5, handshake_timeout_seconds=1.5)
    registration = Registration(lid_pb2_grpc.LidServiceServicer(), lid_pb2_grpc.add_LidServiceServicer_to_server,
                                SERVICES["lid"].grpc_service)  # fmt: skip
    with serve_in_thread([registration], settings) as address:
        yield address


def test_idle_connections_leave_health_answering_and_are_closed_after_the_timeouts(server):
    port = int(server.rsplit(":", 1)[1])
    silent = [_connect(port) for _ in range(SILENT)]
    quiet = [_connect(port, HTTP2_HELLO) for _ in range(QUIET_HTTP2)]
    try:
        assert [_health(server) for _ in range(20)] == ["SERVING"] * 20  # each within its 2 s deadline
        closed = [_closed_by_server(sock, within=10) for sock in silent + quiet]
        assert closed.count(True) == SILENT + QUIET_HTTP2, (closed[:SILENT].count(True), closed[SILENT:].count(True))
        assert _health(server) == "SERVING"
    finally:
        for sock in silent + quiet:
            sock.close()


def test_connections_beyond_the_cap_are_refused_and_room_returns_when_idle_ones_close():
    settings = ServerSettings(port=0, metrics_port=0, max_connections=20, handshake_timeout_seconds=1.5)
    registration = Registration(lid_pb2_grpc.LidServiceServicer(), lid_pb2_grpc.add_LidServiceServicer_to_server,
                                SERVICES["lid"].grpc_service)  # fmt: skip
    with serve_in_thread([registration], settings) as address:
        port = int(address.rsplit(":", 1)[1])
        held = [_connect(port) for _ in range(20)]
        extra = [_connect(port) for _ in range(10)]
        try:
            # The ones over the cap are closed at once; the held ones after the handshake timeout.
            assert all(_closed_by_server(sock, within=1.0) for sock in extra)
            assert all(_closed_by_server(sock, within=10) for sock in held)
            assert _health(address) == "SERVING"
        finally:
            for sock in held + extra:
                sock.close()
