"""gRPC face of the trainer: `polyglot.v1.trainer_pb2` messages to the job manager and back (through `wire`)."""

from __future__ import annotations

from polyglot.v1 import trainer_pb2, trainer_pb2_grpc

from services.trainer.jobs import JobManager
from services.trainer.schema import Job
from services.trainer.wire import job_to_proto, progress_to_proto, spec_from_proto, state_from_proto


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, manager: JobManager):
        self.manager = manager

    async def SubmitJob(self, request, context):
        spec = spec_from_proto(request.spec)
        return job_to_proto(await self.manager.submit(spec, request.idempotency_key))

    async def WatchJob(self, request, context):
        async for item in self.manager.watch(request.job_id):
            if isinstance(item, Job):
                yield trainer_pb2.JobEvent(job=job_to_proto(item))
            else:
                yield trainer_pb2.JobEvent(progress=progress_to_proto(item))

    async def GetJob(self, request, context):
        return job_to_proto(self.manager.get(request.job_id))

    async def CancelJob(self, request, context):
        return job_to_proto(await self.manager.cancel(request.job_id))

    async def ListJobs(self, request, context):
        states = [state_from_proto(s) for s in request.states]
        jobs, token = self.manager.list(states, dict(request.labels), request.page_size, request.page_token)
        return trainer_pb2.ListJobsResponse(jobs=[job_to_proto(j) for j in jobs], next_page_token=token)

    async def aclose(self) -> None:
        await self.manager.aclose()
