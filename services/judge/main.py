"""Process entry of the judge service (`polyglot-serve judge`). Heavy imports stay inside `build`.

The API key is read from the environment only (OPENAI_API_KEY or POLYGLOT_JUDGE_API_KEY), never from the
command line, where `ps` would show it: the serve CLI leaves secret fields out.
"""

from __future__ import annotations

from services.common.catalog import SERVICES
from services.common.server import Registration
from services.common.settings import ServerSettings
from services.judge.settings import JudgeSettings


def build(server: ServerSettings, settings: JudgeSettings) -> list[Registration]:
    from polyglot.v1 import judge_pb2_grpc

    from services.common.store import open_store
    from services.judge.core import Judge
    from services.judge.servicer import JudgeServicer

    if settings.provider == "openai":
        import openai  # noqa: F401  (seconds to import: pay it at start-up, not in the first call)
    store = open_store(_store_location(settings.store_uri or server.store_uri))
    identifier = None
    if settings.lid_address:
        from services.judge.lid_gate import LidServiceIdentifier

        identifier = LidServiceIdentifier(settings.lid_address, batch_size=settings.lid_batch_size)
    return [
        Registration(
            JudgeServicer(Judge(settings, store, identifier)),
            judge_pb2_grpc.add_JudgeServiceServicer_to_server,
            SERVICES["judge"].grpc_service,
        )
    ]


def _store_location(uri: str) -> str:
    """`file://./dir` (the runtime's default, a relative path) as the plain path the store accepts."""
    if uri.startswith("file://") and not uri.startswith("file:///"):
        return uri.removeprefix("file://")
    return uri
