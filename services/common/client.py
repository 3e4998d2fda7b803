"""What every typed client shares: channels, retries on transient codes, and status → domain error.

Flows and other tools use the per-service wrappers (`services.lid.client.LidClient`, ...), which build on
this. Retries cover UNAVAILABLE and DEADLINE_EXCEEDED only; INVALID_ARGUMENT and friends are raised at once
as the matching `services.common.errors` class.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from services.common import errors

T = TypeVar("T")
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def make_channel(
    address: str,
    *,
    max_message_mb: int = 64,
    tls_ca: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> grpc.Channel:
    size = max_message_mb * 1024 * 1024
    options = [("grpc.max_send_message_length", size), ("grpc.max_receive_message_length", size)]
    if tls_ca:
        creds = grpc.ssl_channel_credentials(
            root_certificates=tls_ca.read_bytes(),
            private_key=tls_key.read_bytes() if tls_key else None,
            certificate_chain=tls_cert.read_bytes() if tls_cert else None,
        )
        return grpc.secure_channel(address, creds, options=options)
    return grpc.insecure_channel(address, options=options)


def to_domain_error(exc: grpc.RpcError) -> errors.PolyglotError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    detail = exc.details() if hasattr(exc, "details") else str(exc)
    cls = errors.BY_CODE.get(code.name, errors.PolyglotError)
    err = cls(detail or code.name)
    err.grpc_code = code  # type: ignore[attr-defined]
    return err


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, grpc.RpcError) and exc.code() in TRANSIENT


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
            raise to_domain_error(exc) from exc

    def _retrying(self, once: Callable[[], T]) -> T:
        """The remaining `retries - 1` attempts, with exponential back-off and jitter."""
        return retry(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(self.retries - 1),
            wait=wait_exponential_jitter(multiplier=0.2, max=5),
            reraise=True,
        )(once)()

    def stream(self, method: str, request: Any, *, timeout: float | None = None):
        """Server-streaming call; yields messages, mapping errors like `call` (no retry mid-stream)."""
        fn = getattr(self.stub, method)
        try:
            yield from fn(request, timeout=timeout if timeout is not None else self.timeout)
        except grpc.RpcError as exc:
            raise to_domain_error(exc) from exc

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


def wait_for_health(address: str, timeout: float = 60.0, service: str = "") -> None:
    """Block until the server at `address` answers SERVING, or raise `Unavailable`."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as exc:
                last = exc
            time.sleep(0.1)
    raise errors.Unavailable(f"{address} not SERVING after {timeout:.0f} s (last error: {last})")
