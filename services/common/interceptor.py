"""One place where domain errors become gRPC status codes, every call is logged, and metrics are counted.

Logging is one JSON line per call: method, status, duration. Never payloads, peers' secrets or metadata.
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
from prometheus_client import Counter, Histogram

from services.common.errors import PolyglotError

log = logging.getLogger("polyglot.rpc")

CALLS = Counter("polyglot_rpc_calls_total", "gRPC calls handled", ["service", "method", "code"])
LATENCY = Histogram(
    "polyglot_rpc_latency_seconds",
    "gRPC call latency (streams: until the last message)",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)


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
async def _accounted(full_method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    """Around one call's handler: map its error to a status (or let an abort through) and count it."""
    call = _Call(full_method)
    try:
        yield
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


def _wrap_unary(behavior: Callable[..., Awaitable[Any]], full_method: str):
    async def handler(request_or_iterator, context):
        async with _accounted(full_method, context):
            response = behavior(request_or_iterator, context)
            if inspect.isawaitable(response):
                response = await response
        return response

    return handler


def _wrap_stream(behavior: Callable[..., AsyncIterator[Any]], full_method: str):
    async def handler(request_or_iterator, context):
        async with _accounted(full_method, context):
            messages = behavior(request_or_iterator, context)
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
    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith("/grpc."):
            return handler  # health and reflection: not worth a log line per probe
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, method),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            _wrap_stream(handler.stream_stream, method),
            handler.request_deserializer,
            handler.response_serializer,
        )
