"""Process entry of the judge service: `polyglot serve judge`. Heavy imports stay inside `build`."""

from __future__ import annotations

from services.common.serve import Grace, Host, MetricsPort, Port, run
from services.common.server import Registration
from services.common.settings import ServerSettings


def build(settings: ServerSettings) -> list[Registration]:
    from polyglot.v1 import judge_pb2_grpc

    # Thin until the service's own issue lands: the generated base servicer answers UNIMPLEMENTED.
    return [
        Registration(
            judge_pb2_grpc.JudgeServiceServicer(),
            judge_pb2_grpc.add_JudgeServiceServicer_to_server,
            "polyglot.v1.JudgeService",
        )
    ]


def serve(host: Host = None, port: Port = None, metrics_port: MetricsPort = None, grace: Grace = None) -> None:
    """Serve the judge service (polyglot.v1.JudgeService)."""
    run("judge", build, host=host, port=port, metrics_port=metrics_port, grace=grace)
