"""Run a service inside this process on a background event loop: for tests, benchmarks and notebooks.

    with serve_in_thread(lid_build) as address:
        LidClient(address).identify(["hallo welt"])

The server is the real runtime (interceptor, health, reflection) on a free loopback port; only the
process boundary is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator

from services.common.server import Registration, ServiceRuntime
from services.common.settings import ServerSettings


@contextlib.contextmanager
def serve_in_thread(
    build: Callable[[ServerSettings], list[Registration]] | list[Registration],
    settings: ServerSettings | None = None,
    grace: float = 1.0,
) -> Iterator[str]:
    settings = settings or ServerSettings(port=0, metrics_port=0)
    # Loopback only; another 127.x.y.z address stands for another machine (a DNS name with several replicas).
    host = settings.host if settings.host.startswith("127.") else "127.0.0.1"
    settings = settings.model_copy(update={"host": host})
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="polyglot-inprocess-server", daemon=True)
    thread.start()

    async def start() -> tuple[ServiceRuntime, int]:
        registrations = build(settings) if callable(build) else build
        if asyncio.iscoroutine(registrations):
            registrations = await registrations
        runtime = ServiceRuntime(settings, registrations)
        return runtime, await runtime.start()

    runtime, port = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=300)
    try:
        yield f"{host}:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runtime.stop(grace), loop).result(timeout=grace + 60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
