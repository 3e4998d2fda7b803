"""polyglot.v1.GeneratorService over grpc.aio: messages in and out of `core.Generator`, nothing more.

Domain errors raised by the core become status codes in the shared runtime's interceptor; per-item
problems travel in each result's `ItemStatus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from polyglot.v1 import common_pb2, generator_pb2, generator_pb2_grpc

from services.common.errors import DeadlineExceeded
from services.common.interceptor import log_field
from services.common.messages import to_message
from services.common.presets import SamplingParams
from services.common.status import item_status
from services.generator.core import Generator, ModelEntry, resolve_sampling
from services.generator.structured import JsonSchema, Regex, Structured

log = logging.getLogger("polyglot.generator")

_OPTIONAL = ("temperature", "top_p", "top_k", "frequency_penalty", "repetition_penalty", "max_tokens", "seed")


def sampling_from_proto(msg: common_pb2.SamplingParams) -> SamplingParams:
    overrides = {name: getattr(msg, name) for name in _OPTIONAL if msg.HasField(name)}
    if msg.stop:
        overrides["stop"] = list(msg.stop)
    return resolve_sampling(msg.preset, overrides)


def structured_from_proto(msg: generator_pb2.StructuredOutput) -> Structured | None:
    which = msg.WhichOneof("constraint")
    if which == "json_schema":
        return JsonSchema(msg.json_schema)
    if which == "regex":
        return Regex(msg.regex)
    return None


def model_info(entry: ModelEntry) -> generator_pb2.ModelInfo:
    return to_message(generator_pb2.ModelInfo, entry)


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    def __init__(self, generator: Generator):
        self.generator = generator

    async def Generate(self, request, context) -> None:
        limits = self.generator.limits
        limits.check_request_id(request.request_id)
        # Ids and sizes only: prompts are payload and never logged.
        # Ids and names as escaped text: a newline in one must not forge a log line (log_field).
        log.info("generate request_id=%s prompts=%d adapter=%s", log_field(request.request_id),
                 len(request.prompts), log_field(request.adapter or "-"))
        sampling = sampling_from_proto(request.sampling)
        outcomes = self.generator.generate(
            list(request.prompts),
            sampling,
            adapter=request.adapter,
            response_prefix=request.response_prefix,
            structured=structured_from_proto(request.structured),
        )
        # Closed on the way out, whatever ends the stream: that unpins its adapter and drops its queued rows.
        async with contextlib.aclosing(outcomes):
            async for outcome in outcomes:
                result = to_message(
                    generator_pb2.GenerateResult,
                    outcome,
                    finish_reason="error" if outcome.error else outcome.finish_reason,
                    status=item_status(outcome.error),
                    request_id=request.request_id,
                )
                # A write waits while the client's flow-control window is full: one that stopped reading
                # would otherwise hold its adapter slot for as long as it keeps the connection open.
                try:
                    await asyncio.wait_for(context.write(result), limits.stream_stall_seconds)
                except TimeoutError:
                    raise DeadlineExceeded(
                        f"the client took no result for {limits.stream_stall_seconds:g} s; the stream was ended"
                    ) from None

    async def Score(self, request, context) -> generator_pb2.ScoreResponse:
        self.generator.limits.check_request_id(request.request_id)
        log.info("score request_id=%s items=%d adapter=%s", log_field(request.request_id), len(request.items),
                 log_field(request.adapter or "-"))
        items = [(item.context, item.continuation) for item in request.items]
        outcomes = await self.generator.score(items, adapter=request.adapter, start_token=request.start_token)
        return generator_pb2.ScoreResponse(
            results=[
                to_message(generator_pb2.ScoreResult, o, status=item_status(o.error)) for o in outcomes
            ]
        )

    async def LoadAdapter(self, request, context) -> generator_pb2.ModelInfo:
        return model_info(await self.generator.load_adapter(request.name, request.uri))

    async def UnloadAdapter(self, request, context) -> generator_pb2.UnloadAdapterResponse:
        await self.generator.unload_adapter(request.name)
        return generator_pb2.UnloadAdapterResponse()

    async def ListModels(self, request, context) -> generator_pb2.ListModelsResponse:
        return generator_pb2.ListModelsResponse(
            models=[model_info(m) for m in self.generator.list_models()],
            max_loaded_adapters=self.generator.max_loaded_adapters,
        )

    async def aclose(self) -> None:
        await self.generator.aclose()
