"""Each HTTP request counted, timed and logged as the gRPC interceptor does for each call: one JSON log line
(`event: http`, INFO, WARNING for a 4xx/5xx) and Prometheus metrics on the process's /metrics port.

A plain ASGI middleware (no body buffering), so it costs a few microseconds per request.
"""

from __future__ import annotations

import json
import logging
import time

from prometheus_client import Counter, Histogram

log = logging.getLogger("polyglot.http")

REQUESTS = Counter("polyglot_http_requests_total", "HTTP requests handled", ["path", "status"])
HTTP_LATENCY = Histogram(
    "polyglot_http_latency_seconds",
    "HTTP request latency, until the response is sent",
    ["path"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
KNOWN_PATHS = frozenset({"/v1/models", "/v1/completions", "/v1/chat/completions"})


class RequestMetrics:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        # Unknown paths share one label: a scanner must not grow the metric without bound.
        path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
        status = 0

        async def sent(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                REQUESTS.labels(path, str(status)).inc()  # before the client can have the response
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            if not status:  # failed before answering (the server's error handler sends the 500)
                status = 500
                REQUESTS.labels(path, str(status)).inc()
            elapsed = time.perf_counter() - start
            HTTP_LATENCY.labels(path).observe(elapsed)
            level = logging.INFO if status < 400 else logging.WARNING
            if log.isEnabledFor(level):
                record = {"event": "http", "method": scope["method"], "path": path, "status": status,
                          "ms": round(elapsed * 1000, 2)}  # fmt: skip
                log.log(level, json.dumps(record))
