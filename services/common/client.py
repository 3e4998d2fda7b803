"""What every typed client shares: channels, retries on transient codes, and status → domain error.

Flows and other tools use the per-service wrappers (`services.lid.client.LidClient`, ...), which build on
this; each has an asyncio twin (`AsyncLidClient`, ...) on `AsyncServiceClient`, with the same retry policy
and error mapping. Retries cover `errors.TRANSIENT_CODES` (UNAVAILABLE, DEADLINE_EXCEEDED) only;
INVALID_ARGUMENT and friends are raised at once as the matching `services.common.errors` class. An address
may name several replicas (a list, or a `dns:///` name); calls are spread round-robin over them.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tenacity import AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from services.common import errors
from services.common.config.types import grpc_target
from services.common.credentials import channel_credentials
from services.common.credentials import channel_options as credential_options
from services.common.status import domain_error

T = TypeVar("T")


# Every channel balances calls over all the addresses its target resolves to: a `dns:///` name of a headless
# Service (one address per pod) or a static list of replicas. gRPC's default, pick_first, would pin every
# call to one connection, so one replica. For a target of one address round_robin behaves like pick_first.
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})

# Keepalive pings find a connection to a vanished pod in seconds rather than at the next call's deadline.
# The servers allow pings this often (services/common/server.py), so they never answer with "too many pings".
KEEPALIVE_MS = 30_000
_KEEPALIVE = [
    ("grpc.keepalive_time_ms", KEEPALIVE_MS),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


def channel_options(max_message_mb: int = 64) -> list[tuple[str, int | str]]:
    size = max_message_mb * 1024 * 1024
    return [
        ("grpc.max_send_message_length", size),
        ("grpc.max_receive_message_length", size),
        ("grpc.service_config", _SERVICE_CONFIG),
        *_KEEPALIVE,
    ]


def make_channel(
    address: str,
    *,
    max_message_mb: int = 64,
    tls_ca: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    aio: bool = False,
) -> grpc.Channel | grpc.aio.Channel:
    """A channel to `address`: `host:port`, a list of replicas (`127.0.0.1:5001,127.0.0.1:5002`) or any gRPC
    target (`dns:///lid:50051`); calls are spread round-robin over every address it resolves to."""
    options = channel_options(max_message_mb)
    target = grpc_target(address)
    module = grpc.aio if aio else grpc
    if tls_ca:
        creds = grpc.ssl_channel_credentials(
            root_certificates=tls_ca.read_bytes(),
            private_key=tls_key.read_bytes() if tls_key else None,
            certificate_chain=tls_cert.read_bytes() if tls_cert else None,
        )
        return module.secure_channel(target, creds, options=options)
    # The process's own credentials (POLYGLOT_TLS_CA, POLYGLOT_TOKEN, ...): services.common.credentials.
    creds = channel_credentials(target)
    if creds is not None:
        return module.secure_channel(target, creds, options=options + credential_options())
    return module.insecure_channel(target, options=options)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, grpc.RpcError) and exc.code().name in errors.TRANSIENT_CODES


def _policy(attempts: int) -> dict[str, Any]:
    """The retry policy of both clients: `attempts` tries on transient codes, exponential back-off with jitter."""
    return dict(
        retry=retry_if_exception(_is_transient),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=0.2, max=5),
        reraise=True,
    )


class ServiceClient:
    """Base of the typed clients: owns a channel, a default deadline, and the retry policy."""

    stub_class: Callable[[grpc.Channel], Any]

    def __init__(
        self,
        address: str | None = None,
        *,
        channel: grpc.Channel | None = None,
        timeout: float | None = 600.0,
        retries: int = 4,
    ):
        if channel is None and address is None:
            raise ValueError("give an address or a channel")
        self.address = address
        self.channel = channel or make_channel(address)  # type: ignore[arg-type]
        self.stub = self.stub_class(self.channel)
        self.timeout = timeout
        self.retries = retries

    def call(self, method: str, request: Any, *, timeout: float | None = None, retry_transient: bool = True):
        """Unary call with retries on transient codes; domain errors raised as `services.common.errors`."""
        fn = getattr(self.stub, method)
        deadline = timeout if timeout is not None else self.timeout
        try:
            try:
                return fn(request, timeout=deadline)  # the common case pays for no retry machinery
            except grpc.RpcError as exc:
                if not (retry_transient and self.retries > 1 and _is_transient(exc)):
                    raise
            return self._retrying(lambda: fn(request, timeout=deadline))
        except grpc.RpcError as exc:
            raise domain_error(exc) from exc

    def _retrying(self, once: Callable[[], T]) -> T:
        """The remaining `retries - 1` attempts."""
        return Retrying(**_policy(self.retries - 1))(once)

    def stream(self, method: str, request: Any, *, timeout: float | None = None):
        """Server-streaming call; yields messages, mapping errors like `call` (no retry mid-stream)."""
        fn = getattr(self.stub, method)
        try:
            yield from fn(request, timeout=timeout if timeout is not None else self.timeout)
        except grpc.RpcError as exc:
            raise domain_error(exc) from exc

    def health(self, service: str = "", timeout: float = 2.0) -> str:
        stub = health_pb2_grpc.HealthStub(self.channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AsyncServiceClient:
    """`ServiceClient` for asyncio (grpc.aio): the same deadline, retry policy and error mapping.

    Make it inside the event loop that uses it (a grpc.aio channel belongs to one loop).
    """

    stub_class: Callable[[grpc.aio.Channel], Any]

    def __init__(
        self,
        address: str | None = None,
        *,
        channel: grpc.aio.Channel | None = None,
        timeout: float | None = 600.0,
        retries: int = 4,
    ):
        if channel is None and address is None:
            raise ValueError("give an address or a channel")
        self.address = address
        self.channel = channel or make_channel(address, aio=True)  # type: ignore[arg-type]
        self.stub = self.stub_class(self.channel)
        self.timeout = timeout
        self.retries = retries

    async def call(self, method: str, request: Any, *, timeout: float | None = None, retry_transient: bool = True):
        """Unary call with retries on transient codes; domain errors raised as `services.common.errors`."""
        fn: Callable[..., Awaitable[Any]] = getattr(self.stub, method)
        deadline = timeout if timeout is not None else self.timeout
        attempts = self.retries if retry_transient and self.retries > 1 else 1
        try:
            async for attempt in AsyncRetrying(**_policy(attempts)):
                with attempt:
                    return await fn(request, timeout=deadline)
        except grpc.RpcError as exc:
            raise domain_error(exc) from exc
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def stream(self, method: str, request: Any, *, timeout: float | None = None) -> AsyncIterator[Any]:
        """Server-streaming call; yields messages, mapping errors like `call` (no retry mid-stream)."""
        call = getattr(self.stub, method)(request, timeout=timeout if timeout is not None else self.timeout)
        try:
            async for message in call:
                yield message
        except grpc.RpcError as exc:
            raise domain_error(exc) from exc
        finally:
            call.cancel()  # a consumer that stops early ends the call now, not when the stream is collected

    async def health(self, service: str = "", timeout: float = 2.0) -> str:
        stub = health_pb2_grpc.HealthStub(self.channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


def wait_for_health(address: str, timeout: float = 60.0, service: str = "") -> None:
    """Block until the server at `address` answers SERVING (for `service`, if named), or raise `Unavailable`
    with a one-line reason (nothing listening, another kind of server, no answer, NOT_SERVING)."""
    deadline = time.monotonic() + timeout
    reason = "no answer"
    with make_channel(address) as channel:  # the process's TLS settings; health itself needs no token
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            attempt = max(0.05, min(1.0, deadline - time.monotonic()))
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=attempt)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                reason = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                reason = _health_failure(exc, service)
            if time.monotonic() + 0.1 >= deadline:
                break
            time.sleep(0.1)
    raise errors.Unavailable(f"{address} not SERVING after {timeout:g} s: {reason}")


def _health_failure(exc: grpc.RpcError, service: str) -> str:
    code, details = exc.code(), (exc.details() or "").strip()
    if code == grpc.StatusCode.UNAVAILABLE:
        return "nothing listening (connection refused)" if "refused" in details.lower() else f"unreachable ({details})"
    if code == grpc.StatusCode.NOT_FOUND:
        return f"a server answers but does not serve {service}"
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return "a server answers but has no gRPC health service"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "no answer in time"
    return f"{code.name}: {details}"
