"""One place where callers are checked, requests decoded, domain errors become gRPC status codes, every call
is logged, and metrics are counted.

Logging is one JSON line per call: method, status, duration, caller. Never payloads, peers' secrets or
metadata. A request that is not valid protobuf (invalid UTF-8 in a string field, a corrupt message) is
INVALID_ARGUMENT, logged and counted in `polyglot_rpc_undecodable_requests_total`, not gRPC's UNKNOWN.
Servicers that log text a client chose pass it through `log_field` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from prometheus_client import Counter, Histogram

from services.common.auth import Authenticator
from services.common.errors import InvalidArgument, PolyglotError

log = logging.getLogger("polyglot.rpc")

CALLS = Counter("polyglot_rpc_calls_total", "gRPC calls handled", ["service", "method", "code"])
LATENCY = Histogram(
    "polyglot_rpc_latency_seconds",
    "gRPC call latency (streams: until the last message)",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
UNDECODABLE = Counter(
    "polyglot_rpc_undecodable_requests_total",
    "Requests that are not valid protobuf (e.g. invalid UTF-8 in a string field)",
    ["service", "method"],
)
_LOG_FIELD_MAX = 200


def log_field(value: object) -> str:
    """`value` safe to put in a log line: control characters (a newline that would forge a line, terminal
    escapes) written as escapes, and cut to 200 characters. For text a client chose (request ids, names)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > _LOG_FIELD_MAX:
        text = text[:_LOG_FIELD_MAX] + "..."
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


def _status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, PolyglotError):
        return grpc.StatusCode[exc.code], str(exc)
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED, "cancelled"
    if isinstance(exc, NotImplementedError):
        return grpc.StatusCode.UNIMPLEMENTED, "method not implemented"
    if isinstance(exc, MemoryError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, "out of memory while serving this call"
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the server log"


class _Call:
    """Book-keeping for one call: timing, the final code, the log line, the metrics."""

    def __init__(self, full_method: str):
        _, _, rest = full_method.partition("/")
        self.service, _, self.method = rest.partition("/")
        self.start = time.perf_counter()
        self.caller: str | None = None

    def finish(self, code: grpc.StatusCode, error: str | None = None) -> None:
        elapsed = time.perf_counter() - self.start
        CALLS.labels(self.service, self.method, code.name).inc()
        LATENCY.labels(self.service, self.method).observe(elapsed)
        level = logging.INFO if code == grpc.StatusCode.OK else logging.WARNING
        if not log.isEnabledFor(level):
            return
        record: dict[str, Any] = {
            "event": "rpc",
            "service": self.service,
            "method": self.method,
            "code": code.name,
            "ms": round(elapsed * 1000, 2),
        }
        if self.caller:
            record["caller"] = self.caller
        if error and code != grpc.StatusCode.OK:
            record["error"] = error
        log.log(level, json.dumps(record))


async def _abort(context: grpc.aio.ServicerContext, call: _Call, exc: BaseException) -> None:
    code, message = _status_of(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.exception("unhandled error in %s/%s", call.service, call.method, exc_info=exc)
    call.finish(code, message)
    if code == grpc.StatusCode.CANCELLED:
        raise exc
    await context.abort(code, message)


def _final_code(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.OK


@contextlib.asynccontextmanager
async def _accounted(full_method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[_Call]:
    """Around one call's handler: map its error to a status (or let an abort through) and count it."""
    call = _Call(full_method)
    try:
        yield call
    except asyncio.CancelledError:
        call.finish(grpc.StatusCode.CANCELLED)
        raise
    except Exception as exc:
        if _is_abort(exc):
            call.finish(_final_code(context))
            raise
        await _abort(context, call, exc)
    else:
        call.finish(_final_code(context))


class _Gate:
    """What a method's calls pass before its handler: the caller's credentials, then decoding the request.

    The runtime registers each method with no request deserializer, so a call is checked before its bytes
    are parsed, and a message that does not parse becomes INVALID_ARGUMENT here.
    """

    def __init__(self, full_method: str, deserializer: Callable[[bytes], Any] | None, auth: Authenticator | None):
        self.full_method = full_method
        self.deserializer = deserializer
        self.auth = auth

    def admit(self, context: grpc.aio.ServicerContext, call: _Call) -> None:
        if self.auth is None:
            return
        authorization = next((v for k, v in context.invocation_metadata() or () if k == "authorization"), None)
        names = (context.auth_context() or {}).get("x509_common_name") or [b""]
        call.caller = self.auth.identify(authorization, names[0].decode(errors="replace") or None)
        self.auth.authorize(call.caller, self.full_method)

    def decode(self, raw: Any, call: _Call) -> Any:
        if self.deserializer is None or not isinstance(raw, bytes):
            return raw
        try:
            return self.deserializer(raw)
        except (DecodeError, UnicodeDecodeError) as exc:
            UNDECODABLE.labels(call.service, call.method).inc()
            raise InvalidArgument(
                f"not a valid {call.method} request ({exc}); string fields must be UTF-8", field="request"
            ) from None

    async def decode_stream(self, raws: AsyncIterator[bytes], call: _Call) -> AsyncIterator[Any]:
        async for raw in raws:
            yield self.decode(raw, call)


def _admitted(gate: _Gate, context, call, request_or_iterator, streaming_request: bool):
    """The caller checked (before any byte of its request is decoded), then its request or request stream."""
    gate.admit(context, call)
    if streaming_request:
        return gate.decode_stream(request_or_iterator, call)
    return gate.decode(request_or_iterator, call)


def _wrap_unary(behavior: Callable[..., Awaitable[Any]], gate: _Gate, streaming_request: bool):
    async def handler(request_or_iterator, context):
        async with _accounted(gate.full_method, context) as call:
            request = _admitted(gate, context, call, request_or_iterator, streaming_request)
            response = behavior(request, context)
            if inspect.isawaitable(response):
                response = await response
        return response

    return handler


def _wrap_stream(behavior: Callable[..., AsyncIterator[Any]], gate: _Gate, streaming_request: bool):
    async def handler(request_or_iterator, context):
        async with _accounted(gate.full_method, context) as call:
            request = _admitted(gate, context, call, request_or_iterator, streaming_request)
            messages = behavior(request, context)
            if inspect.isasyncgen(messages):
                async for message in messages:
                    yield message
            elif inspect.isawaitable(messages):  # a handler that writes with context.write()
                await messages
            else:
                for message in messages or ():
                    yield message

    return handler


def _is_abort(exc: BaseException) -> bool:
    # context.abort() raises this private exception; it already carries its status.
    return type(exc).__name__ == "AbortError"


class RuntimeInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every Polyglot method; `auth` (None = no checks) says who may call what."""

    def __init__(self, auth: Authenticator | None = None):
        self.auth = auth

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith("/grpc."):
            return handler  # health and reflection: open to probes, and not worth a log line per probe
        gate = _Gate(handler_call_details.method, handler.request_deserializer, self.auth)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, gate, False), None, handler.response_serializer
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, gate, True), None, handler.response_serializer
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, gate, False), None, handler.response_serializer
            )
        return grpc.stream_stream_rpc_method_handler(
            _wrap_stream(handler.stream_stream, gate, True), None, handler.response_serializer
        )
