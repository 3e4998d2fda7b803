"""Process entry of the lid service: `polyglot serve lid`. Heavy imports stay inside `build`."""

from __future__ import annotations

from services.common.serve import Grace, Host, MetricsPort, Port, run
from services.common.server import Registration
from services.common.settings import ServerSettings


def build(settings: ServerSettings) -> list[Registration]:
    from polyglot.v1 import lid_pb2_grpc

    # Thin until the service's own issue lands: the generated base servicer answers UNIMPLEMENTED.
    return [
        Registration(
            lid_pb2_grpc.LidServiceServicer(),
            lid_pb2_grpc.add_LidServiceServicer_to_server,
            "polyglot.v1.LidService",
        )
    ]


def serve(host: Host = None, port: Port = None, metrics_port: MetricsPort = None, grace: Grace = None) -> None:
    """Serve the lid service (polyglot.v1.LidService)."""
    run("lid", build, host=host, port=port, metrics_port=metrics_port, grace=grace)
