"""The token-level paths of `/v1/completions`: token-id prompts, `echo`, `logprobs`.

The core speaks text; OpenAI clients (lm-eval's `local-completions` among them) may send token ids and ask
for every prompt token's log-probability. These paths run on the same engine, batching and adapter cache as
the core (`Generator.engine`, `Generator.adapters`), with the core's rules: prompts cut from the left with
BOS kept, the per-batch token budget, adapters pinned while the request runs.

Log-probabilities come from the engine's Score rows, the very computation behind gRPC `Score`: the
log-probability of token i is the score of (ids[:i], ids[i]), so a sum over a continuation equals `Score`'s
(within float error). The engine returns one sum per row, so this costs one row per token (batched together);
top-1 alternatives (logprobs=1) cost a greedy one-token generation and a score more for each position whose
token is not the argmax. An engine call that returned per-token log-probabilities would make it one row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from services.common.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from services.common.presets import SamplingParams
from services.generator.core import NO_MODEL, Generator
from services.generator.engine import Engine, GenRow, ScoreRow, decode_continuation, truncate_left

GREEDY_NEXT = SamplingParams(temperature=0.0, max_tokens=1)


@dataclass
class Position:
    """One token's log-probability, and the argmax token's (the same token when it is the argmax)."""

    logprob: float
    top_id: int
    top_logprob: float


@dataclass
class TokenChoice:
    prompt_index: int
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    text: str = ""  # the completion (stop strings cut), without the prompt
    finish_reason: str = "length"
    positions: list[Position | None] = field(default_factory=list)  # from `first_scored` on; None: unscored

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids


def require_engine(generator: Generator) -> Engine:
    if generator.engine is None or generator.adapters is None:
        raise FailedPrecondition(NO_MODEL, field="model")
    return generator.engine


def check_ids(engine: Engine, prompts: Sequence[Sequence[int]]) -> None:
    vocab = len(engine.tokenizer)
    for i, ids in enumerate(prompts):
        if not ids:
            raise InvalidArgument("empty prompt", field=f"prompt[{i}]")
        bad = next((t for t in ids if t >= vocab), None)
        if bad is not None:
            raise InvalidArgument(f"token id {bad} is outside the vocabulary of {vocab}", field=f"prompt[{i}]")


async def complete_ids(
    generator: Generator,
    adapter: str,
    prompts: list[list[int]],
    sampling: SamplingParams | None,
    *,
    n: int = 1,
    logprobs: int | None = None,
    echo: bool = False,
) -> list[TokenChoice]:
    """n choices per prompt (prompt-major, as OpenAI numbers them); `sampling` None scores the prompts only.

    Choice j of a prompt samples with seed + j, so n choices with one seed differ and are reproducible."""
    engine = require_engine(generator)
    check_ids(engine, prompts)
    async with generator.adapters.use(adapter, field="model") as name:  # type: ignore[union-attr]
        if sampling is None:
            choices = [TokenChoice(i, list(ids)) for i, ids in enumerate(prompts) for _ in range(n)]
        else:
            choices = await _generate(engine, name, prompts, sampling, n)
        if logprobs is not None:
            await _score_positions(engine, name, choices, echo=echo, top=logprobs > 0)
    return choices


async def _generate(
    engine: Engine, name: str, prompts: list[list[int]], sampling: SamplingParams, n: int
) -> list[TokenChoice]:
    max_context = engine.info.max_context
    if sampling.max_tokens >= max_context:
        raise InvalidArgument(
            f"{sampling.max_tokens} leaves no room for the prompt in a context of {max_context} tokens",
            field="max_tokens",
        )
    bos = engine.tokenizer.bos_token_id
    choices: list[TokenChoice] = []
    rows: list[GenRow] = []
    for i, ids in enumerate(prompts):
        kept, _ = truncate_left(list(ids), max_context - sampling.max_tokens, bos)
        if len(kept) + sampling.max_tokens > engine.max_batch_tokens:
            raise ResourceExhausted(
                f"{len(kept)} prompt tokens + {sampling.max_tokens} new tokens exceed this server's "
                f"per-batch budget of {engine.max_batch_tokens} tokens",
                field=f"prompt[{i}]",
            )
        for j in range(n):
            params = sampling if sampling.seed is None else sampling.with_seed(sampling.seed + j)
            rows.append(GenRow(tuple(kept), params, name))
            choices.append(TokenChoice(i, kept))
    for choice, done in zip(choices, await _gather(engine.submit_generate(rows)), strict=True):
        choice.completion_ids = list(done.token_ids)
        choice.text, choice.finish_reason = done.text, done.finish_reason
    return choices


async def _score_positions(engine: Engine, name: str, choices: list[TokenChoice], *, echo: bool, top: bool) -> None:
    """Fill `positions` for every prompt token after the first (echo) and every completion token."""
    wanted: list[tuple[TokenChoice, int]] = []
    for choice in choices:
        first = 1 if echo else len(choice.prompt_ids)
        choice.positions = [None] * len(choice.ids)
        wanted += [(choice, i) for i in range(first, len(choice.ids))]
    rows = [ScoreRow(tuple(c.ids[:i]), (c.ids[i],), name) for c, i in wanted]
    scores = await _gather(engine.submit_score(rows)) if rows else []
    missed = []  # positions whose token is not the argmax: find the argmax token and its log-probability
    for (choice, i), score in zip(wanted, scores, strict=True):
        choice.positions[i] = Position(score.logprob, choice.ids[i], score.logprob)
        if top and not score.is_greedy:
            missed.append((choice, i))
    if not missed:
        return
    greedy = await _gather(engine.submit_generate([GenRow(tuple(c.ids[:i]), GREEDY_NEXT, name) for c, i in missed]))
    tops = [done.token_ids[0] if done.token_ids else engine.tokenizer.eos_token_id for done in greedy]
    top_scores = await _gather(
        engine.submit_score([ScoreRow(tuple(c.ids[:i]), (t,), name) for (c, i), t in zip(missed, tops, strict=True)])
    )
    for (choice, i), top_id, score in zip(missed, tops, top_scores, strict=True):
        position = choice.positions[i]
        if position is not None and score.logprob > position.logprob:
            position.top_id, position.top_logprob = top_id, score.logprob


async def _gather(futures: list[Future]) -> list:
    """Results in order; a client that hangs up cancels the rows still queued."""
    wrapped = [asyncio.wrap_future(f) for f in futures]
    try:
        return await asyncio.gather(*wrapped)
    finally:
        for f in futures:
            f.cancel()


def token_texts(tokenizer, ids: Sequence[int]) -> list[str]:
    """Each token's text as it continues the ones before (special tokens by name, e.g. `<s>`)."""
    special = set(tokenizer.all_special_ids)
    return [
        tokenizer.convert_ids_to_tokens(t) if t in special else decode_continuation(tokenizer, ids[:i], [t])
        for i, t in enumerate(ids)
    ]
