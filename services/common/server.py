"""The shared gRPC runtime every Polyglot service runs on.

`run_service()` starts a `grpc.aio` server with the standard health service and reflection, the
auth/error-mapping/logging/metrics interceptor, a Prometheus endpoint, optional (mutual) TLS and bearer
tokens (services/common/auth.py, docs/security.md), and graceful shutdown: on SIGTERM or SIGINT health turns
NOT_SERVING, new calls are refused, in-flight calls get `grace_seconds` to finish, then are cancelled, and
the process exits 0.

Connections are bounded: at most `max_connections` open (fewer if the open-file limit is lower), each closed
after `max_connection_idle_seconds` without a call, or `handshake_timeout_seconds` if it never finishes its
handshake, with at most `max_streams_per_connection` calls each; idle peers are pinged and dropped when
they do not answer. So idle connections cannot use up the file descriptors that health probes need.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from services.common.auth import Authenticator, check_exposure
from services.common.client import KEEPALIVE_MS
from services.common.interceptor import RuntimeInterceptor
from services.common.settings import ServerSettings

log = logging.getLogger("polyglot.server")

# File descriptors kept back from `max_connections`: models, the store, logs, the metrics endpoint.
FD_RESERVE = 256
# The server pings a connection that has been quiet this long, and closes it if no answer comes in 20 s.
SERVER_KEEPALIVE_MS = 120_000


@dataclass(frozen=True)
class Registration:
    """One servicer to mount: `add(servicer, server)` is the generated `add_XServicer_to_server`."""

    servicer: Any
    add: Callable[[Any, grpc.aio.Server], None]
    full_name: str  # e.g. "polyglot.v1.LidService", for health and reflection
    # Whether stopping the server also closes the servicer (`aclose`): a benchmark that reuses one model
    # across servers keeps it open.
    close_on_stop: bool = True


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _server_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    if not settings.tls_cert:
        return None
    if not settings.tls_key:
        raise ValueError("tls_key must be set together with tls_cert")
    ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


def _server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    size = settings.max_message_mb * 1024 * 1024
    options = [
        ("grpc.max_send_message_length", size),
        ("grpc.max_receive_message_length", size),
        ("grpc.so_reuseport", 0),
        # Accept the clients' keepalive pings (services/common/client.py), also on idle connections; half
        # their interval, so a ping a little early is no strike towards a "too many pings" GOAWAY.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", KEEPALIVE_MS // 2),
        ("grpc.keepalive_time_ms", SERVER_KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.max_allowed_incoming_connections", connection_limit(settings.max_connections)),
        ("grpc.server_handshake_timeout_ms", round(settings.handshake_timeout_seconds * 1000)),
        ("grpc.max_concurrent_streams", settings.max_streams_per_connection),
    ]
    if settings.max_connection_idle_seconds:
        options.append(("grpc.max_connection_idle_ms", round(settings.max_connection_idle_seconds * 1000)))
    if settings.max_connection_age_seconds:
        options.append(("grpc.max_connection_age_ms", round(settings.max_connection_age_seconds * 1000)))
    if settings.max_connection_age_grace_seconds is not None:
        options.append(("grpc.max_connection_age_grace_ms", round(settings.max_connection_age_grace_seconds * 1000)))
    return options


def connection_limit(wanted: int) -> int:
    """`wanted`, or fewer when the process may not open that many files (beyond FD_RESERVE)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FD_RESERVE))


class ServiceRuntime:
    """A started server; `stop()` drains it. Tests use this directly; processes use `run_service()`."""

    def __init__(self, settings: ServerSettings, registrations: Iterable[Registration]):
        self.settings = settings
        self.registrations = list(registrations)
        check_exposure(settings)  # beyond loopback without authentication only when told --insecure
        self.server = grpc.aio.server(
            interceptors=[RuntimeInterceptor(Authenticator.from_settings(settings))],
            options=_server_options(settings),
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        )
        self.health = health.aio.HealthServicer()
        self.port: int | None = None
        self.health_port: int | None = None
        self._probes: grpc.aio.Server | None = None  # the plaintext health-only server, if asked for
        self._stopped = asyncio.Event()

    async def start(self) -> int:
        names = [r.full_name for r in self.registrations]
        for reg in self.registrations:
            reg.add(reg.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server)
        address = f"{self.settings.host}:{self.settings.port}"
        creds = _server_credentials(self.settings)
        if creds:
            self.port = self.server.add_secure_port(address, creds)
        else:
            self.port = self.server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"could not bind {address}")
        await self.server.start()
        if self.settings.health_port is not None:
            await self._serve_probes()
        for name in ["", *names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        methods = [name for name, on in (("tokens", self.settings.callers), ("client certificates",
                   self.settings.tls_client_ca)) if on]  # fmt: skip
        log.info(json.dumps({
            "event": "serving", "address": f"{self.settings.host}:{self.port}", "services": names,
            "tls": creds is not None, "auth": " + ".join(methods) or "none",
        }))  # fmt: skip
        return self.port

    async def _serve_probes(self) -> None:
        """Health alone, in plaintext: kubelet's gRPC probes cannot present TLS, and health tells nothing."""
        self._probes = grpc.aio.server(options=[("grpc.so_reuseport", 0), ("grpc.max_connection_idle_ms", 30_000)])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._probes)
        address = f"{self.settings.host}:{self.settings.health_port}"
        self.health_port = self._probes.add_insecure_port(address)
        if not self.health_port:
            raise OSError(f"could not bind {address}")
        await self._probes.start()

    async def stop(self, grace: float | None = None) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        await self.health.enter_graceful_shutdown()  # probes see NOT_SERVING while we drain
        grace = self.settings.grace_seconds if grace is None else grace
        log.info(json.dumps({"event": "draining", "grace_seconds": grace}))
        await self.server.stop(grace)
        if self._probes is not None:
            await self._probes.stop(0)
        for reg in self.registrations:
            closer = getattr(reg.servicer, "aclose", None) if reg.close_on_stop else None
            if closer:
                await closer()
        log.info(json.dumps({"event": "stopped"}))

    async def wait(self) -> None:
        await self.server.wait_for_termination()


async def serve_until_signal(
    settings: ServerSettings,
    build: Callable[[ServerSettings], Awaitable[list[Registration]] | list[Registration]],
) -> None:
    # Settings that would refuse the start are checked before the (slow) build loads any model.
    check_exposure(settings)
    Authenticator.from_settings(settings)
    registrations = build(settings)
    if asyncio.iscoroutine(registrations):
        registrations = await registrations
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.host)
    runtime = ServiceRuntime(settings, registrations)
    await runtime.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.ensure_future(runtime.wait())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    await runtime.stop()
    for task in (waiter, stopper):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def run_service(settings: ServerSettings, build) -> None:
    """Blocking process entry: serve until SIGTERM/SIGINT, then drain and return (exit code 0)."""
    configure_logging(settings.log_level)
    asyncio.run(serve_until_signal(settings, build))
