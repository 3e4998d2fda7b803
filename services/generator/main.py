"""Process entry of the generator service: `polyglot serve generator`. Heavy imports stay inside `build`."""

from __future__ import annotations

from services.common.serve import Grace, Host, MetricsPort, Port, run
from services.common.server import Registration
from services.common.settings import ServerSettings


def build(settings: ServerSettings) -> list[Registration]:
    from polyglot.v1 import generator_pb2_grpc

    # Thin until the service's own issue lands: the generated base servicer answers UNIMPLEMENTED.
    return [
        Registration(
            generator_pb2_grpc.GeneratorServiceServicer(),
            generator_pb2_grpc.add_GeneratorServiceServicer_to_server,
            "polyglot.v1.GeneratorService",
        )
    ]


def serve(host: Host = None, port: Port = None, metrics_port: MetricsPort = None, grace: Grace = None) -> None:
    """Serve the generator service (polyglot.v1.GeneratorService)."""
    run("generator", build, host=host, port=port, metrics_port=metrics_port, grace=grace)
