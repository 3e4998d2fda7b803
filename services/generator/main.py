"""Process entry of the generator service (`polyglot-serve generator`). Heavy imports stay inside `build`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from services.common.catalog import SERVICES
from services.common.server import Registration
from services.common.settings import ServerSettings
from services.generator.settings import GeneratorSettings

if TYPE_CHECKING:
    from services.generator.core import Generator
    from services.generator.http.serve import FrontDoor


async def build(server: ServerSettings, settings: GeneratorSettings) -> list[Registration]:
    from services.common.store.confine import StoreRoots
    from services.generator.factory import create_generator

    # The model loads (in a thread, off the server loop) before the server binds.
    # Adapter URIs stay under the generator's adapter cache and its store (or POLYGLOT_FILE_ROOTS, _S3_BUCKETS).
    roots = StoreRoots.for_service(server, settings.adapter_cache_dir)
    generator = await asyncio.to_thread(create_generator, settings, roots=roots)
    front_door = None
    if settings.http_port:  # the OpenAI-compatible HTTP API, on this loop beside gRPC
        from services.generator.http.serve import FrontDoor

        front_door = await FrontDoor.start(generator, server, settings.http_port)
    return registrations(generator, front_door=front_door)


def registrations(
    generator: Generator, *, close_on_stop: bool = True, front_door: FrontDoor | None = None
) -> list[Registration]:
    """The service around an existing generator, e.g. `serve_in_thread(registrations(generator))`."""
    from polyglot.v1 import generator_pb2_grpc

    from services.generator.servicer import GeneratorServicer

    servicer = GeneratorServicer(generator)
    if front_door is not None:  # its requests use the generator: it drains before the servicer closes that
        servicer.aclose = front_door.then(servicer.aclose)
    return [
        Registration(
            servicer,
            generator_pb2_grpc.add_GeneratorServiceServicer_to_server,
            SERVICES["generator"].grpc_service,
            close_on_stop=close_on_stop,
        )
    ]
