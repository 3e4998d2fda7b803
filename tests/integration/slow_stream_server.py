"""A real service process whose Generate streams slowly: the subject of the SIGTERM tests.

python -m tests.integration.slow_stream_server PORT GRACE_SECONDS
"""

from __future__ import annotations

import asyncio
import sys

from polyglot.v1 import generator_pb2 as pb
from polyglot.v1 import generator_pb2_grpc as pb_grpc

from services.common.server import Registration, run_service
from services.common.settings import ServerSettings


class SlowGenerator(pb_grpc.GeneratorServiceServicer):
    async def Generate(self, request, context):
        for i, _ in enumerate(request.prompts):
            await asyncio.sleep(0.2)
            yield pb.GenerateResult(index=i, text=f"out{i}")


def build(settings):
    return [
        Registration(SlowGenerator(), pb_grpc.add_GeneratorServiceServicer_to_server, "polyglot.v1.GeneratorService")
    ]


if __name__ == "__main__":
    port, grace = int(sys.argv[1]), float(sys.argv[2])
    run_service(ServerSettings(port=port, metrics_port=0, grace_seconds=grace), build)
