"""Typed client of the generator service, for flows, the lm-eval adapter and tools.

    with GeneratorClient("127.0.0.1:50052") as gen:
        for result in gen.generate(["### Human: Hi\\n### Assistant:"], preset="chat", seed=42):
            print(result.index, result.text)
        scores = gen.score([("The capital of France is", " Paris")])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from polyglot.v1 import common_pb2, generator_pb2, generator_pb2_grpc

from services.common.client import ServiceClient
from services.common.presets import SamplingParams

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


class GeneratorClient(ServiceClient):
    stub_class = generator_pb2_grpc.GeneratorServiceStub

    def generate(
        self,
        prompts: Iterable[str],
        params: SamplingParams | None = None,
        *,
        preset: str = "",
        adapter: str = "",
        response_prefix: str = "",
        request_id: str = "",
        timeout: float | None = None,
        **overrides,
    ) -> Iterator[generator_pb2.GenerateResult]:
        """Results as each completion finishes (check `.index`; `.status.code` != 0 marks a failed item)."""
        request = generator_pb2.GenerateRequest(
            prompts=list(prompts),
            sampling=sampling_to_proto(params, preset=preset, **overrides),
            adapter=adapter,
            response_prefix=response_prefix,
            request_id=request_id,
        )
        yield from self.stream("Generate", request, timeout=timeout)

    def generate_all(self, prompts: Iterable[str], *args, **kwargs) -> list[generator_pb2.GenerateResult]:
        """`generate`, collected and put back in prompt order."""
        results = list(self.generate(prompts, *args, **kwargs))
        return sorted(results, key=lambda r: r.index)

    def score(
        self,
        items: Iterable[tuple[str, str]],
        *,
        adapter: str = "",
        request_id: str = "",
        timeout: float | None = None,
    ) -> list[generator_pb2.ScoreResult]:
        request = generator_pb2.ScoreRequest(
            items=[generator_pb2.ScoreItem(context=c, continuation=x) for c, x in items],
            adapter=adapter,
            request_id=request_id,
        )
        return list(self.call("Score", request, timeout=timeout).results)

    def load_adapter(self, name: str, uri: str, *, timeout: float | None = None) -> generator_pb2.ModelInfo:
        return self.call("LoadAdapter", generator_pb2.LoadAdapterRequest(name=name, uri=uri), timeout=timeout)

    def unload_adapter(self, name: str) -> None:
        self.call("UnloadAdapter", generator_pb2.UnloadAdapterRequest(name=name))

    def list_models(self) -> generator_pb2.ListModelsResponse:
        return self.call("ListModels", generator_pb2.ListModelsRequest())
