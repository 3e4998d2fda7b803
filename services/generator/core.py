"""The generator's logic, free of gRPC: validate a request, prepare its rows, run them on the engine.

- Sampling: a named preset (the paper's `chat` / `constrained`, from `services.common.presets`) with the
  request's explicit fields on top.
- Prompts: `prompt + response_prefix` (the forced response prefix: the model continues after it, and the
  completion is returned without it), tokenised, then cut from the left to leave room for max_tokens.
- Structured output: a JSON Schema or regex (`structured.py`), checked before any row runs.
- Scoring: (context, continuation) split into tokens exactly as lm-evaluation-harness does.
- Bad input fails the call with the offending field named (INVALID_ARGUMENT / NOT_FOUND); a problem with
  one item of a batch is reported on that item only, so its neighbours are still served.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.common.errors import FailedPrecondition, InvalidArgument, PolyglotError, ResourceExhausted
from services.common.presets import SamplingParams, get_preset
from services.generator.adapters import AdapterCache
from services.generator.engine import (
    BASE,
    START_TOKENS,
    Engine,
    GenRow,
    ScoreRow,
    abandon,
    encode,
    encode_pair,
    truncate_left,
)
from services.generator.limits import RequestLimits
from services.generator.structured import Structured, character_parser

Pair = tuple[list[int], list[int]]  # (context ids, continuation ids)
NO_MODEL = "no base model is configured: start the service with --model (or POLYGLOT_GENERATOR_MODEL)"


class ItemError(PolyglotError):
    """An unexpected failure of one item, reported on that item (code INTERNAL)."""


@dataclass
class GenerateOutcome:
    index: int
    text: str = ""
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated_tokens: int = 0
    error: PolyglotError | None = None


@dataclass
class ScoreOutcome:
    index: int
    logprob: float = 0.0
    is_greedy: bool = False
    num_tokens: int = 0
    error: PolyglotError | None = None


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str  # "base" | "adapter"
    uri: str
    backend: str
    max_context: int
    base_model: str


def resolve_sampling(preset: str = "", overrides: dict[str, Any] | None = None) -> SamplingParams:
    """The preset's parameters (or the defaults) with `overrides` on top; errors name `sampling.<field>`."""
    base = get_preset(preset) if preset else SamplingParams()
    overrides = dict(overrides or {})
    if overrides.get("top_k") == -1:  # vLLM/OpenAI spelling of "no top-k cut"
        overrides["top_k"] = 0
    if "stop" in overrides:
        overrides["stop"] = tuple(overrides["stop"])
        for i, stop in enumerate(overrides["stop"]):
            if not stop:
                raise InvalidArgument("stop strings must be non-empty", field=f"sampling.stop[{i}]")
    try:
        return base.with_overrides(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        raise InvalidArgument(first["msg"], field=f"sampling.{loc}") from None


class Generator:
    """One engine (or none, until a model is configured) plus its adapter cache."""

    def __init__(self, engine: Engine | None, adapters: AdapterCache | None, limits: RequestLimits | None = None):
        self.engine = engine
        self.adapters = adapters
        self.limits = limits or RequestLimits()

    def _require_engine(self) -> tuple[Engine, AdapterCache]:
        if self.engine is None or self.adapters is None:
            raise FailedPrecondition(NO_MODEL, field="model")
        return self.engine, self.adapters

    def _adapter_ref(self, ref: str) -> str:
        engine = self.engine
        return BASE if engine is not None and ref == engine.info.model else ref

    # -- Generate -------------------------------------------------------------------------------------------

    async def generate(
        self,
        prompts: list[str],
        sampling: SamplingParams,
        *,
        adapter: str = "",
        response_prefix: str = "",
        structured: Structured | None = None,
    ) -> AsyncIterator[GenerateOutcome]:
        """Completions in the order they finish, each tagged with its prompt's index."""
        engine, adapters = self._require_engine()
        if not prompts:
            raise InvalidArgument("at least one prompt is required", field="prompts")
        self.limits.check_prompts(prompts, response_prefix)  # before anything is tokenised
        if structured is not None:
            await asyncio.to_thread(character_parser, structured)  # a regex compiles to an automaton: not on the loop
        max_context = engine.info.max_context
        if sampling.max_tokens >= max_context:
            raise InvalidArgument(
                f"{sampling.max_tokens} leaves no room for the prompt in a context of {max_context} tokens",
                field="sampling.max_tokens",
            )
        async with adapters.use(self._adapter_ref(adapter)) as name:
            prepared = await asyncio.to_thread(self._prepare_prompts, engine, prompts, sampling, response_prefix)
            outcomes: list[GenerateOutcome] = []
            rows: list[GenRow] = []
            row_index: list[int] = []
            for i, item in enumerate(prepared):
                if isinstance(item, PolyglotError):
                    outcomes.append(GenerateOutcome(i, error=item))
                    continue
                ids, cut = item
                if len(ids) + sampling.max_tokens > engine.max_batch_tokens:
                    raise ResourceExhausted(
                        f"{len(ids)} prompt tokens + {sampling.max_tokens} new tokens exceed this server's "
                        f"per-batch budget of {engine.max_batch_tokens} tokens",
                        field=f"prompts[{i}]",
                    )
                outcomes.append(GenerateOutcome(i, prompt_tokens=len(ids), truncated_tokens=cut))
                rows.append(GenRow(tuple(ids), sampling, name, structured))
                row_index.append(i)
            for outcome in outcomes:
                if outcome.error:
                    yield outcome
            futures = engine.submit_generate(rows) if rows else []
            async for position, result in _as_completed(futures):
                outcome = outcomes[row_index[position]]
                if isinstance(result, BaseException):
                    outcome.error = _item_error(result)
                else:
                    outcome.text = result.text
                    outcome.finish_reason = result.finish_reason
                    outcome.completion_tokens = result.completion_tokens
                yield outcome

    @staticmethod
    def _prepare_prompts(
        engine: Engine, prompts: list[str], sampling: SamplingParams, prefix: str
    ) -> list[tuple[list[int], int] | PolyglotError]:
        limit = engine.info.max_context - sampling.max_tokens
        bos = engine.tokenizer.bos_token_id
        prepared: list[tuple[list[int], int] | PolyglotError] = []
        for i, prompt in enumerate(prompts):
            if not prompt and not prefix:
                prepared.append(InvalidArgument("empty prompt", field=f"prompts[{i}]"))
                continue
            prepared.append(truncate_left(encode(engine.tokenizer, prompt + prefix), limit, bos))
        return prepared

    # -- Score ----------------------------------------------------------------------------------------------

    async def score(
        self, items: list[tuple[str, str]], *, adapter: str = "", start_token: str = ""
    ) -> list[ScoreOutcome]:
        """lm-eval `loglikelihood` for each (context, continuation), in request order; `start_token`: see
        `engine.encode_pair` ("" = BOS as lm-eval 0.4, "eos" = lm-eval 0.3's hf-causal, "none")."""
        engine, adapters = self._require_engine()
        if not items:
            raise InvalidArgument("at least one item is required", field="items")
        if start_token not in START_TOKENS:
            raise InvalidArgument(
                f"start_token {start_token!r} is not one of {', '.join(repr(t) for t in START_TOKENS)}",
                field="start_token",
            )
        if start_token == "eos" and engine.tokenizer.eos_token_id is None:
            raise InvalidArgument("the model's tokenizer has no EOS token", field="start_token")
        self.limits.check_score_items(items)
        async with adapters.use(self._adapter_ref(adapter)) as name:
            prepared = await asyncio.to_thread(self._prepare_pairs, engine, items, start_token)
            outcomes = [ScoreOutcome(i) for i in range(len(items))]
            rows: list[ScoreRow] = []
            row_index: list[int] = []
            for i, item in enumerate(prepared):
                if isinstance(item, PolyglotError):
                    outcomes[i].error = item
                    continue
                ctx, cont = item
                cost = min(len(ctx) + len(cont) - 1, engine.info.max_context)
                if cost > engine.max_batch_tokens:
                    raise ResourceExhausted(
                        f"{cost} tokens exceed this server's per-batch budget of {engine.max_batch_tokens}",
                        field=f"items[{i}]",
                    )
                rows.append(ScoreRow(tuple(ctx), tuple(cont), name))
                row_index.append(i)
            futures = engine.submit_score(rows) if rows else []
            async for position, result in _as_completed(futures):
                outcome = outcomes[row_index[position]]
                if isinstance(result, BaseException):
                    outcome.error = _item_error(result)
                else:
                    outcome.logprob, outcome.is_greedy = result.logprob, result.is_greedy
                    outcome.num_tokens = result.num_tokens
            return outcomes

    @staticmethod
    def _prepare_pairs(
        engine: Engine, items: list[tuple[str, str]], start_token: str = ""
    ) -> list[Pair | PolyglotError]:
        prepared: list[Pair | PolyglotError] = []
        for i, (context, continuation) in enumerate(items):
            if not continuation:
                prepared.append(InvalidArgument("empty continuation", field=f"items[{i}].continuation"))
                continue
            ctx, cont = encode_pair(engine.tokenizer, context, continuation, start_token)
            if not ctx:  # only with start_token "none": the first continuation token would have no context
                prepared.append(
                    InvalidArgument("start_token 'none' needs a non-empty context", field=f"items[{i}].context")
                )
            elif not cont:
                prepared.append(InvalidArgument("continuation has no tokens", field=f"items[{i}].continuation"))
            elif len(cont) > engine.info.max_context:
                prepared.append(
                    InvalidArgument(
                        f"{len(cont)} tokens exceed the context of {engine.info.max_context}",
                        field=f"items[{i}].continuation",
                    )
                )
            else:
                prepared.append((ctx, cont))
        return prepared

    # -- adapters and models --------------------------------------------------------------------------------

    async def load_adapter(self, name: str, uri: str) -> ModelEntry:
        engine, adapters = self._require_engine()
        if name == engine.info.model:
            raise InvalidArgument(f"{name!r} is the base model's name", field="name")
        entry = await adapters.load(name, uri)
        return self._adapter_entry(entry.name, entry.uri)

    async def unload_adapter(self, name: str) -> None:
        _, adapters = self._require_engine()
        await adapters.unload(name)

    def list_models(self) -> list[ModelEntry]:
        if self.engine is None or self.adapters is None:
            return []
        info = self.engine.info
        base = ModelEntry(info.model, "base", "", info.backend, info.max_context, info.model)
        return [base, *(self._adapter_entry(a.name, a.uri) for a in self.adapters.loaded())]

    def _adapter_entry(self, name: str, uri: str) -> ModelEntry:
        info = self.engine.info  # type: ignore[union-attr]
        return ModelEntry(name, "adapter", uri, info.backend, info.max_context, info.model)

    @property
    def max_loaded_adapters(self) -> int:
        return self.adapters.max_loaded if self.adapters else 0

    async def aclose(self) -> None:
        if self.engine is not None:
            await asyncio.to_thread(self.engine.close)


def _item_error(exc: BaseException) -> PolyglotError:
    if isinstance(exc, PolyglotError):
        return exc
    return ItemError(f"{type(exc).__name__}: {exc}")


async def _as_completed(futures) -> AsyncIterator[tuple[int, Any]]:
    """(position, result or exception) for concurrent futures, as each completes; cancels the rest if the
    consumer stops early (a client that hung up frees its queued rows)."""
    if not futures:
        return
    wrapped = [asyncio.wrap_future(f) for f in futures]
    index = {id(w): i for i, w in enumerate(wrapped)}
    pending = set(wrapped)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: index[id(f)]):
                exc = fut.exception()
                yield index[id(fut)], exc if exc is not None else fut.result()
    finally:
        for fut in futures:
            abandon(fut)  # queued rows are cancelled, running ones dropped at the decoding loop's next step
        for fut in pending:
            fut.cancel()
