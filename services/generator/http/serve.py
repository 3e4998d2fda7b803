"""Serve the front door with uvicorn on the generator process's own event loop, beside the gRPC server.

FastAPI + uvicorn: the most used, well-kept ASGI pair, with pydantic schemas that match the rest of Polyglot.
One loop for both servers, because the core is an asyncio object (its adapter cache's lock belongs to one
loop) and the model runs on the engine's own thread anyway: the loop only moves bytes. TLS is the gRPC
server's (`tls_cert`, `tls_key`, `tls_client_ca` of `ServerSettings`), so both ports encrypt alike, and
callers authenticate as on gRPC (`services.common.auth`: the same tokens and rules).

    door = await FrontDoor.start(generator, server_settings, port=8052)   # port 0: any free port
    ...
    await door.aclose()        # drains in-flight requests (up to grace_seconds) first
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

import uvicorn

from services.common.auth import Authenticator
from services.common.settings import ServerSettings
from services.generator.core import Generator
from services.generator.http.app import create_app

log = logging.getLogger("polyglot.generator.http")


class _Server(uvicorn.Server):
    """The process's own SIGTERM handling drains both servers; uvicorn must not take the signals over."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class FrontDoor:
    def __init__(self, server: _Server, task: asyncio.Task, port: int, scheme: str):
        self._server = server
        self._task = task
        self.port = port
        self.scheme = scheme

    @classmethod
    async def start(cls, generator: Generator, settings: ServerSettings, port: int) -> FrontDoor:
        """Bind `settings.host:port` (OSError if taken) and serve until `aclose`."""
        # proto IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
        # and without it every response waits ~40 ms for a delayed ACK (Nagle).
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((settings.host, port))
        except OSError as exc:
            sock.close()
            raise OSError(f"generator HTTP front door: cannot bind {settings.host}:{port}: {exc}") from exc
        tls = _tls_options(settings)
        config = uvicorn.Config(
            create_app(generator, Authenticator.from_settings(settings)),
            lifespan="off",
            access_log=False,
            log_config=None,  # uvicorn's loggers go to the process's own handlers and format
            log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=max(1, round(settings.grace_seconds)),
            **tls,
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="generator-http")
        while not server.started:
            if task.done():  # failed to start: its exception says why
                await task
                raise OSError("generator HTTP front door stopped while starting")
            await asyncio.sleep(0.01)
        bound = sock.getsockname()[1]
        scheme = "https" if tls else "http"
        log.info(json.dumps({"event": "serving", "address": f"{scheme}://{settings.host}:{bound}/v1"}))
        return cls(server, task, bound, scheme)

    async def aclose(self) -> None:
        self._server.should_exit = True
        await self._task

    def then(self, closer: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """A closer that stops this door first, then runs `closer` (e.g. the servicer's, which closes the
        generator its requests use)."""

        async def close() -> None:
            await self.aclose()
            await closer()

        return close


def _tls_options(settings: ServerSettings) -> dict:
    if not settings.tls_cert:
        return {}
    if not settings.tls_key:
        raise ValueError("tls_key must be set together with tls_cert")
    options = {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
    if settings.tls_client_ca:  # as gRPC: a client CA means clients must present certificates
        options |= {"ssl_ca_certs": str(settings.tls_client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options
