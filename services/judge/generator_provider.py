"""Provider `generator`: a Polyglot generator service answers as the judge (clusters without an external API).

The conversation is laid out in the study models' chat format (Guanaco's `### Human: … ### Assistant:`,
configurable) and sent as one prompt to `GeneratorService.Generate`, greedy (temperature 0) with the fixed
seed. `model` names a loaded adapter (or an artifact URI the generator loads); a base model's own name,
as `ListModels` reports it, means the base model itself.

A grading request (JSON mode) asks the generator for structured output: the verdict's JSON Schema, with
the reasoning bounded so that the whole object fits the token budget, so even a weak or random model
returns a verdict the judge can parse. Every request's max_tokens is capped at a quarter of the model's
context (as ListModels reports it), so that the prompt keeps most of it.
"""

from __future__ import annotations

from services.common.errors import TRANSIENT_CODES, FailedPrecondition, PolyglotError
from services.generator.client import AsyncGeneratorClient
from services.generator.structured import MAX_CONSECUTIVE_WHITESPACE, JsonSchema
from services.judge.parsing import MAX_SCORE, MIN_SCORE
from services.judge.providers import Completion, Message, Provider, ProviderError, TransientError
from services.judge.settings import JudgeSettings
from services.judge.usage import Meter

# Besides the usual transient codes, a generator that is full (RESOURCE_EXHAUSTED: its queue or memory)
# or that aborted a batch will take the same request later: the judge backs off and asks again.
RETRYABLE_CODES = TRANSIENT_CODES | {"RESOURCE_EXHAUSTED", "ABORTED"}

# Tokens of a verdict besides its reasoning: the keys, quotes and braces (26 characters), whitespace
# between them (at most MAX_CONSECUTIVE_WHITESPACE at each of 12 places), the score and EOS, rounded up.
# A token has at least one character; one reasoning character costs at most 6 (a `\uXXXX` escape).
VERDICT_OVERHEAD_TOKENS = 26 + 12 * MAX_CONSECUTIVE_WHITESPACE + 14
TOKENS_PER_REASONING_CHAR = 6


def verdict_schema(max_tokens: int) -> JsonSchema:
    """The reply shape `parsing.parse_verdict` reads, with a reasoning short enough to end in max_tokens."""
    reasoning_chars = max(0, (max_tokens - VERDICT_OVERHEAD_TOKENS) // TOKENS_PER_REASONING_CHAR)
    return JsonSchema(
        {
            "type": "object",
            "properties": {
                "reasoning": {"type": "string", "maxLength": reasoning_chars},
                # An enum rather than minimum/maximum: lm-format-enforcer enforces enums, not numeric bounds.
                "score": {"type": "integer", "enum": list(range(MIN_SCORE, MAX_SCORE + 1))},
            },
            "required": ["reasoning", "score"],
            "additionalProperties": False,
        }
    )


def failure(code: str, message: str) -> TransientError | ProviderError:
    """A failed call or item of the generator as the judge sorts it: transient (retried) or permanent."""
    if code in RETRYABLE_CODES:
        return TransientError(f"generator {code}: {message}")
    return ProviderError(f"generator {code}: {message}", code)


class GeneratorProvider(Provider):
    # Verdicts are decoded under `verdict_schema`, with max_tokens capped by the model's context.
    reply_shape = {"constraint": "verdict_schema-1", "max_tokens_cap": "context/4"}
    name = "generator"

    def __init__(self, settings: JudgeSettings):
        super().__init__(settings)
        if not settings.generator_address:
            raise FailedPrecondition(
                "provider generator needs the generator's address: set POLYGLOT_JUDGE_GENERATOR_ADDRESS",
                field="generator_address",
            )
        # retries=1: `Provider.complete` retries with the judge's own back-off and counts every attempt.
        self.client = AsyncGeneratorClient(settings.generator_address, timeout=settings.request_timeout, retries=1)
        self._base_models: set[str] | None = None
        self._max_context = 0  # as ListModels reports it; 0 = unknown (no cap)

    async def aclose(self) -> None:
        await self.client.close()

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
                listed = await self.client.list_models(timeout=30)
                self._base_models = {m.name for m in listed.models if m.kind == "base"}
                self._max_context = max((m.max_context for m in listed.models), default=0)
            except PolyglotError as exc:
                if exc.code in RETRYABLE_CODES:
                    raise failure(exc.code, exc.message) from None
                self._base_models = set()  # cannot ask: take `model` as an adapter name
        return "" if model in self._base_models or model in ("", "base") else model

    async def _complete(
        self, messages: list[Message], *, model: str, json_mode: bool, max_tokens: int, meter: Meter
    ) -> Completion:
        adapter = await self._adapter(model)
        if self._max_context:
            max_tokens = min(max_tokens, self._max_context // 4)
        meter.sent()
        try:
            results = await self.client.generate_all(
                [self.layout(messages)],
                temperature=self.settings.temperature,
                seed=self.settings.seed,
                max_tokens=max_tokens,
                adapter=adapter,
                structured=verdict_schema(max_tokens) if json_mode else None,
            )
        except PolyglotError as exc:
            raise failure(exc.code, exc.message) from None
        if not results:
            raise TransientError("generator returned no result")
        result = results[0]
        meter.tokens(model, result.prompt_tokens, result.completion_tokens)
        if result.error:
            raise failure(result.error.code, result.error.message)
        return Completion(result.text, result.prompt_tokens, result.completion_tokens)
