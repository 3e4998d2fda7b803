"""Provider `generator`: a Polyglot generator service answers as the judge (clusters without an external API).

The conversation is laid out in the study models' chat format (Guanaco's `### Human: … ### Assistant:`,
configurable) and sent as one prompt to `GeneratorService.Generate`, greedy (temperature 0) with the fixed
seed. `model` names a loaded adapter (or an artifact URI the generator loads); a base model's own name,
as `ListModels` reports it, means the base model itself.
"""

from __future__ import annotations

import grpc
from polyglot.v1 import common_pb2, generator_pb2, generator_pb2_grpc

from services.common.errors import FailedPrecondition
from services.judge.providers import Completion, Message, Provider, ProviderError, TransientError
from services.judge.settings import JudgeSettings
from services.judge.usage import Meter

_TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
}
_TRANSIENT_CODES = {code.value[0] for code in _TRANSIENT}
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


class GeneratorProvider(Provider):
    name = "generator"

    def __init__(self, settings: JudgeSettings):
        super().__init__(settings)
        if not settings.generator_address:
            raise FailedPrecondition(
                "provider generator needs the generator's address: set POLYGLOT_JUDGE_GENERATOR_ADDRESS",
                field="generator_address",
            )
        self.channel = grpc.aio.insecure_channel(settings.generator_address)
        self.stub = generator_pb2_grpc.GeneratorServiceStub(self.channel)
        self._base_models: set[str] | None = None

    async def aclose(self) -> None:
        await self.channel.close()

    def layout(self, messages: list[Message]) -> str:
        """The conversation as one prompt, ending where the judge model's answer begins."""
        turn = self.settings.generator_chat_format
        parts, user = [], None
        for message in messages:
            if message["role"] in ("user", "system"):
                user = message["content"] if user is None else f"{user}\n\n{message['content']}"
            elif message["role"] == "assistant":
                parts.append(turn.format(user=(user or "").strip(), assistant=message["content"].strip()))
                user = None
        parts.append(turn.format(user=(user or "").strip(), assistant="").rstrip())
        return " ".join(parts)

    async def _adapter(self, model: str) -> str:
        if self._base_models is None:
            try:
                reply = await self.stub.ListModels(generator_pb2.ListModelsRequest(), timeout=30)
                self._base_models = {m.name for m in reply.models if m.kind == "base"}
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _TRANSIENT:
                    raise TransientError(f"generator {exc.code().name}") from None
                self._base_models = set()  # cannot ask: take `model` as an adapter name
        return "" if model in self._base_models or model in ("", "base") else model

    async def _complete(
        self, messages: list[Message], *, model: str, json_mode: bool, max_tokens: int, meter: Meter
    ) -> Completion:
        request = generator_pb2.GenerateRequest(
            prompts=[self.layout(messages)],
            sampling=common_pb2.SamplingParams(
                temperature=self.settings.temperature, seed=self.settings.seed, max_tokens=max_tokens
            ),
            adapter=await self._adapter(model),
        )
        results = []
        meter.sent()
        try:
            async for result in self.stub.Generate(request, timeout=self.settings.request_timeout):
                results.append(result)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _TRANSIENT:
                raise TransientError(f"generator {exc.code().name}") from None
            raise ProviderError(f"generator: {exc.code().name}: {exc.details()}", exc.code().name) from None
        if not results:
            raise TransientError("generator returned no result")
        result = results[0]
        meter.tokens(model, result.prompt_tokens, result.completion_tokens)
        if result.status.code:
            if result.status.code in _TRANSIENT_CODES:
                raise TransientError(f"generator item status {result.status.code}")
            code = _CODE_NAMES.get(result.status.code, "INTERNAL")
            raise ProviderError(f"generator: {result.status.message}", code)
        return Completion(result.text, result.prompt_tokens, result.completion_tokens)
