"""Process entry of the trainer service (`polyglot-serve trainer`). Heavy imports stay inside `build`."""

from __future__ import annotations

from services.common.catalog import SERVICES
from services.common.server import Registration
from services.common.settings import ServerSettings
from services.trainer.settings import TrainerSettings


async def build(server: ServerSettings, settings: TrainerSettings) -> list[Registration]:
    """Starts the job manager (reloading persisted jobs) on the server's loop."""
    from polyglot.v1 import trainer_pb2_grpc

    from services.common.store import StoreRoots
    from services.trainer.jobs import JobManager
    from services.trainer.servicer import TrainerServicer

    # Callers' file:// URIs stay under the trainer's state directory and its store (or POLYGLOT_FILE_ROOTS).
    manager = JobManager(settings, roots=StoreRoots.for_service(server, settings.state_dir))
    await manager.start()
    return [
        Registration(
            TrainerServicer(manager),
            trainer_pb2_grpc.add_TrainerServiceServicer_to_server,
            SERVICES["trainer"].grpc_service,
        )
    ]
