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


async def build(server: ServerSettings, settings: GeneratorSettings) -> list[Registration]:
    from services.generator.factory import create_generator

    # The model loads (in a thread, off the server loop) before the server binds.
    return registrations(await asyncio.to_thread(create_generator, settings))


def registrations(generator: Generator, *, close_on_stop: bool = True) -> list[Registration]:
    """The service around an existing generator, e.g. `serve_in_thread(registrations(generator))`."""
    from polyglot.v1 import generator_pb2_grpc

    from services.generator.servicer import GeneratorServicer

    return [
        Registration(
            GeneratorServicer(generator),
            generator_pb2_grpc.add_GeneratorServiceServicer_to_server,
            SERVICES["generator"].grpc_service,
            close_on_stop=close_on_stop,
        )
    ]
