"""Typed clients of the generator service; they return `services.generator.records`, never protobufs.

    with GeneratorClient("127.0.0.1:50052") as gen:
        for completion in gen.generate(["### Human: Hi\\n### Assistant:"], preset="chat", seed=42):
            print(completion.index, completion.text, completion.error)
        verdict = gen.generate_all([prompt], structured=JsonSchema({"type": "object", ...}), max_tokens=64)
        scores = gen.score([("The capital of France is", " Paris")])

`AsyncGeneratorClient` is the asyncio twin; both build requests and read replies with the functions here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator

from polyglot.v1 import common_pb2, generator_pb2, generator_pb2_grpc

from services.common.client import AsyncServiceClient, ServiceClient
from services.common.messages import from_message
from services.common.presets import SamplingParams
from services.common.status import item_error
from services.generator.core import ModelEntry
from services.generator.records import Completion, Models, ScoreResult
from services.generator.structured import JsonSchema, Regex, Structured

_FIELDS = ("temperature", "top_p", "top_k", "frequency_penalty", "repetition_penalty", "max_tokens", "seed")


def sampling_to_proto(
    params: SamplingParams | None = None, *, preset: str = "", **overrides
) -> common_pb2.SamplingParams:
    """A proto SamplingParams: every field of `params` if given (a full specification), else `preset` plus
    only the `overrides` given, so the server's preset fills the rest."""
    values = params.model_dump() if params is not None else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    msg = common_pb2.SamplingParams(preset=preset)
    for name in _FIELDS:
        if values.get(name) is not None:
            setattr(msg, name, values[name])
    if values.get("stop"):
        msg.stop.extend(values["stop"])
    return msg


def structured_to_proto(structured: Structured | None) -> generator_pb2.StructuredOutput | None:
    if isinstance(structured, JsonSchema):
        return generator_pb2.StructuredOutput(json_schema=structured.text)
    if isinstance(structured, Regex):
        return generator_pb2.StructuredOutput(regex=structured.pattern)
    return None


def generate_request(
    prompts: Iterable[str],
    params: SamplingParams | None = None,
    *,
    preset: str = "",
    adapter: str = "",
    response_prefix: str = "",
    request_id: str = "",
    structured: Structured | None = None,
    **overrides,
) -> generator_pb2.GenerateRequest:
    return generator_pb2.GenerateRequest(
        prompts=list(prompts),
        sampling=sampling_to_proto(params, preset=preset, **overrides),
        adapter=adapter,
        response_prefix=response_prefix,
        request_id=request_id,
        structured=structured_to_proto(structured),
    )


def score_request(
    items: Iterable[tuple[str, str]], adapter: str, request_id: str, start_token: str = ""
) -> generator_pb2.ScoreRequest:
    return generator_pb2.ScoreRequest(
        items=[generator_pb2.ScoreItem(context=c, continuation=x) for c, x in items],
        adapter=adapter,
        request_id=request_id,
        start_token=start_token,
    )


def completion(result: generator_pb2.GenerateResult) -> Completion:
    return from_message(Completion, result, error=item_error(result.status))


def score_results(response: generator_pb2.ScoreResponse) -> list[ScoreResult]:
    return [from_message(ScoreResult, r, error=item_error(r.status)) for r in response.results]


def model_entry(info: generator_pb2.ModelInfo) -> ModelEntry:
    return from_message(ModelEntry, info)


def models(response: generator_pb2.ListModelsResponse) -> Models:
    return Models([model_entry(m) for m in response.models], response.max_loaded_adapters)


class GeneratorClient(ServiceClient):
    stub_class = generator_pb2_grpc.GeneratorServiceStub

    def generate(self, prompts: Iterable[str], *args, timeout: float | None = None, **kwargs) -> Iterator[Completion]:
        """Completions as each finishes (any order: use `.index`; `.error` marks a failed item). Arguments
        as `generate_request`: sampling `params`, or a `preset` plus overrides (`max_tokens=...`), and
        `structured=JsonSchema(...)` or `Regex(...)` to constrain the completions."""
        for result in self.stream("Generate", generate_request(prompts, *args, **kwargs), timeout=timeout):
            yield completion(result)

    def generate_all(self, prompts: Iterable[str], *args, **kwargs) -> list[Completion]:
        """`generate`, collected and put back in prompt order."""
        return sorted(self.generate(prompts, *args, **kwargs), key=lambda c: c.index)

    def score(
        self,
        items: Iterable[tuple[str, str]],
        *,
        adapter: str = "",
        request_id: str = "",
        start_token: str = "",
        timeout: float | None = None,
    ) -> list[ScoreResult]:
        """log P(continuation | context) per item; `start_token`: "" (BOS, lm-eval 0.4) | "eos" (lm-eval 0.3's
        hf-causal) | "none"."""
        request = score_request(items, adapter, request_id, start_token)
        return score_results(self.call("Score", request, timeout=timeout))

    def load_adapter(self, name: str, uri: str, *, timeout: float | None = None) -> ModelEntry:
        request = generator_pb2.LoadAdapterRequest(name=name, uri=uri)
        return model_entry(self.call("LoadAdapter", request, timeout=timeout))

    def unload_adapter(self, name: str) -> None:
        self.call("UnloadAdapter", generator_pb2.UnloadAdapterRequest(name=name))

    def list_models(self, *, timeout: float | None = None) -> Models:
        return models(self.call("ListModels", generator_pb2.ListModelsRequest(), timeout=timeout))


class AsyncGeneratorClient(AsyncServiceClient):
    """`GeneratorClient` for asyncio (the judge's `generator` provider)."""

    stub_class = generator_pb2_grpc.GeneratorServiceStub

    async def generate(
        self, prompts: Iterable[str], *args, timeout: float | None = None, **kwargs
    ) -> AsyncIterator[Completion]:
        async for result in self.stream("Generate", generate_request(prompts, *args, **kwargs), timeout=timeout):
            yield completion(result)

    async def generate_all(self, prompts: Iterable[str], *args, **kwargs) -> list[Completion]:
        return sorted([c async for c in self.generate(prompts, *args, **kwargs)], key=lambda c: c.index)

    async def score(
        self,
        items: Iterable[tuple[str, str]],
        *,
        adapter: str = "",
        request_id: str = "",
        start_token: str = "",
        timeout: float | None = None,
    ) -> list[ScoreResult]:
        request = score_request(items, adapter, request_id, start_token)
        return score_results(await self.call("Score", request, timeout=timeout))

    async def load_adapter(self, name: str, uri: str, *, timeout: float | None = None) -> ModelEntry:
        request = generator_pb2.LoadAdapterRequest(name=name, uri=uri)
        return model_entry(await self.call("LoadAdapter", request, timeout=timeout))

    async def unload_adapter(self, name: str) -> None:
        await self.call("UnloadAdapter", generator_pb2.UnloadAdapterRequest(name=name))

    async def list_models(self, *, timeout: float | None = None) -> Models:
        return models(await self.call("ListModels", generator_pb2.ListModelsRequest(), timeout=timeout))
