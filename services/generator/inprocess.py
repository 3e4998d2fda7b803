"""Serve a generator from a background thread of this process (tests, benchmarks, notebooks).

The gRPC server gets its own event loop on its own thread, so the caller may use the blocking
`GeneratorClient` freely; the model still runs on the backend's model thread.
"""

from __future__ import annotations

import asyncio
import threading

from services.common.server import Registration, ServiceRuntime
from services.common.settings import ServerSettings
from services.generator.core import Generator


class InProcessServer:
    def __init__(self, generator: Generator, host: str = "127.0.0.1", *, close_generator: bool = True):
        self.generator = generator
        self.host = host
        self.close_generator = close_generator
        self.address: str | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="generator-grpc", daemon=True)
        self._runtime: ServiceRuntime | None = None

    def start(self) -> str:
        from polyglot.v1 import generator_pb2_grpc

        from services.generator.servicer import GeneratorServicer

        servicer = GeneratorServicer(self.generator)
        if not self.close_generator:
            servicer.aclose = None  # type: ignore[assignment]  # the runtime only calls it when set
        settings = ServerSettings(host=self.host, port=0, metrics_port=0, grace_seconds=1.0)
        registration = Registration(
            servicer, generator_pb2_grpc.add_GeneratorServiceServicer_to_server, "polyglot.v1.GeneratorService"
        )
        self._thread.start()

        async def start() -> int:
            self._runtime = ServiceRuntime(settings, [registration])
            return await self._runtime.start()

        port = asyncio.run_coroutine_threadsafe(start(), self._loop).result(60)
        self.address = f"{self.host}:{port}"
        return self.address

    def stop(self, grace: float = 1.0) -> None:
        if self._runtime is not None:
            asyncio.run_coroutine_threadsafe(self._runtime.stop(grace), self._loop).result(120)
            self._runtime = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> InProcessServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
