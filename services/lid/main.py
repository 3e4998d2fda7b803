"""Process entry of the lid service (`polyglot-serve lid`). Heavy imports stay inside `build`.

The model is loaded (and checked) before the server binds, so a missing or corrupt model file stops the
process at start-up with exit code 1 and a message naming it.
"""

from __future__ import annotations

from services.common.catalog import SERVICES
from services.common.server import Registration
from services.common.settings import ServerSettings
from services.lid.settings import LidSettings


def build(server: ServerSettings, settings: LidSettings) -> list[Registration]:
    from services.lid.core import LanguageIdentifier
    from services.lid.pool import WorkerPool
    from services.lid.servicer import LidServicer
    from services.lid.wire import add_to_server

    identifier = LanguageIdentifier(
        settings.model,
        max_batch=settings.max_batch,
        max_text_bytes=settings.max_text_bytes,
        word_list=settings.word_list,
    )
    # Forked now, before the gRPC server exists: the children share the loaded model and hold no gRPC state.
    workers = settings.processes()
    pool = WorkerPool(identifier, workers) if workers > 1 else None
    return [Registration(LidServicer(identifier, pool), add_to_server, SERVICES["lid"].grpc_service)]
