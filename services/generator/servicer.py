"""polyglot.v1.GeneratorService over grpc.aio: messages in and out of `core.Generator`, nothing more.

Domain errors raised by the core become status codes in the shared runtime's interceptor; per-item
problems travel in each result's `ItemStatus`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from polyglot.v1 import common_pb2, generator_pb2, generator_pb2_grpc

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

    async def Generate(self, request, context) -> AsyncIterator[generator_pb2.GenerateResult]:
        # Ids and sizes only: prompts are payload and never logged.
        log.info("generate request_id=%s prompts=%d adapter=%s", request.request_id, len(request.prompts),
                 request.adapter or "-")
        sampling = sampling_from_proto(request.sampling)
        outcomes = self.generator.generate(
            list(request.prompts),
            sampling,
            adapter=request.adapter,
            response_prefix=request.response_prefix,
            structured=structured_from_proto(request.structured),
        )
        async for outcome in outcomes:
            yield to_message(
                generator_pb2.GenerateResult,
                outcome,
                finish_reason="error" if outcome.error else outcome.finish_reason,
                status=item_status(outcome.error),
                request_id=request.request_id,
            )

    async def Score(self, request, context) -> generator_pb2.ScoreResponse:
        log.info("score request_id=%s items=%d adapter=%s", request.request_id, len(request.items),
                 request.adapter or "-")
        items = [(item.context, item.continuation) for item in request.items]
        outcomes = await self.generator.score(items, adapter=request.adapter)
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
