"""The shared gRPC runtime every Polyglot service runs on.

`run_service()` starts a `grpc.aio` server with the standard health service and reflection, the
error-mapping/logging/metrics interceptor, a Prometheus endpoint, optional TLS, and graceful shutdown:
on SIGTERM or SIGINT health turns NOT_SERVING, new calls are refused, in-flight calls get
`grace_seconds` to finish, then are cancelled, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from services.common.client import KEEPALIVE_MS
from services.common.interceptor import RuntimeInterceptor
from services.common.settings import ServerSettings

log = logging.getLogger("polyglot.server")


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
    ]
    if settings.max_connection_age_seconds:
        options.append(("grpc.max_connection_age_ms", round(settings.max_connection_age_seconds * 1000)))
    if settings.max_connection_age_grace_seconds is not None:
        options.append(("grpc.max_connection_age_grace_ms", round(settings.max_connection_age_grace_seconds * 1000)))
    return options


class ServiceRuntime:
    """A started server; `stop()` drains it. Tests use this directly; processes use `run_service()`."""

    def __init__(self, settings: ServerSettings, registrations: Iterable[Registration]):
        self.settings = settings
        self.registrations = list(registrations)
        self.server = grpc.aio.server(
            interceptors=[RuntimeInterceptor()],
            options=_server_options(settings),
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        )
        self.health = health.aio.HealthServicer()
        self.port: int | None = None
        self._stopped = asyncio.Event()

    async def start(self) -> int:
        names = [r.full_name for r in self.registrations]
        for reg in self.registrations:
            reg.add(reg.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        address = f"{self.settings.host}:{self.settings.port}"
        creds = _server_credentials(self.settings)
        if creds:
            self.port = self.server.add_secure_port(address, creds)
        else:
            self.port = self.server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"could not bind {address}")
        await self.server.start()
        for name in ["", *names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(json.dumps({"event": "serving", "address": f"{self.settings.host}:{self.port}", "services": names}))
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        await self.health.enter_graceful_shutdown()  # probes see NOT_SERVING while we drain
        grace = self.settings.grace_seconds if grace is None else grace
        log.info(json.dumps({"event": "draining", "grace_seconds": grace}))
        await self.server.stop(grace)
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
