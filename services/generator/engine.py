"""The interface every generator backend implements, and the text rules all backends share.

A backend (`hf`, `vllm`) owns a model and its tokenizer and runs model work on a thread of its own; it is
handed fully prepared rows (token ids, resolved sampling parameters, an adapter name) and answers each
row with a `concurrent.futures.Future`, resolved as soon as that row is done. Everything that must not
differ between backends — tokenising the lm-evaluation-harness way, cutting prompts from the left, where a
stop string ends a completion — lives here, so the two backends cannot drift apart.

No grpc and no torch imports here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, ClassVar

from services.common.presets import SamplingParams
from services.generator.structured import Structured

BASE = ""  # the adapter name that means "the base model"


@dataclass(frozen=True)
class GenRow:
    """One prompt to complete: token ids after truncation, its own sampling parameters and seed, and the
    constraint its completion must match (None: free text)."""

    prompt_ids: tuple[int, ...]
    params: SamplingParams
    adapter: str = BASE
    structured: Structured | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" (EOS or a stop string) or "length" (max_tokens)
    completion_tokens: int
    token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class ScoreRow:
    """A (context, continuation) pair as token ids, split the way lm-eval splits them."""

    context_ids: tuple[int, ...]
    continuation_ids: tuple[int, ...]
    adapter: str = BASE


@dataclass(frozen=True)
class TokenScore:
    logprob: float  # sum of the continuation tokens' log-probabilities
    is_greedy: bool  # argmax at every continuation position equals the continuation token
    num_tokens: int


@dataclass
class EngineInfo:
    backend: str
    model: str
    max_context: int


class Engine(ABC):
    """A loaded base model that completes and scores rows, with LoRA adapters loaded by name.

    All methods are thread-safe. `submit_*` never block on model work: they enqueue and return futures.
    """

    name: ClassVar[str]
    tokenizer: Any  # a transformers tokenizer (both backends use the model's HF tokenizer)
    info: EngineInfo
    # Upper bound on padded tokens (rows × (prompt + new tokens)) in one model call; a single row above it
    # is refused with RESOURCE_EXHAUSTED before it reaches the model.
    max_batch_tokens: int

    @abstractmethod
    def submit_generate(self, rows: list[GenRow]) -> list[Future[Completion]]: ...

    @abstractmethod
    def submit_score(self, rows: list[ScoreRow]) -> list[Future[TokenScore]]: ...

    @abstractmethod
    def load_adapter(self, name: str, path: str) -> None:
        """Make the PEFT adapter directory `path` servable as `name` (blocking)."""

    @abstractmethod
    def unload_adapter(self, name: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


# -- tokenisation, shared by every backend ----------------------------------------------------------------


def abandon(future: Future) -> None:
    """The caller gave up on this row (its deadline passed, it hung up). A queued row is cancelled; a row that
    a batch is already decoding cannot be, so it is marked, and the decoding loop drops it at its next step
    instead of decoding it to the end while later calls wait."""
    if not future.cancel() and not future.done():
        future.polyglot_abandoned = True  # a running concurrent Future ignores cancel(); the loop reads this


def is_abandoned(future: Future) -> bool:
    return getattr(future, "polyglot_abandoned", False)


def encode(tokenizer, text: str, *, add_special_tokens: bool = True) -> list[int]:
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


def prefix_token_id(tokenizer) -> int:
    """lm-eval's `prefix_token_id`: BOS if the tokenizer has one, else EOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


START_TOKENS = ("", "eos", "none")  # ScoreRequest.start_token: BOS (lm-eval 0.4) | EOS (lm-eval 0.3) | none


def start_token_id(tokenizer, start_token: str) -> int | None:
    """The id a scored sequence starts with for a `start_token` other than "" (None for "none")."""
    if start_token == "eos":
        return tokenizer.eos_token_id
    return None


def encode_pair(tokenizer, context: str, continuation: str, start_token: str = "") -> tuple[list[int], list[int]]:
    """Split (context, continuation) into token ids exactly as lm-evaluation-harness 0.4 does for causal LMs.

    `TemplateLM.loglikelihood` + `_encode_pair` with HFLM's defaults: trailing spaces of the context move to
    the continuation; the whole string is encoded once and split after the context's own encoding, so the
    continuation's first token is the one the model really sees at the boundary; an empty context becomes
    the prefix token (BOS) alone.

    `start_token` "eos" / "none": the same split of the text encoded without special tokens, after the EOS
    (lm-eval 0.3's hf-causal: `[eot_token_id] + tok_encode(text)` with `add_special_tokens=False`) or after
    nothing ("none": the caller refuses an empty context, whose first token would have nothing before it).
    """
    if start_token:
        return _encode_pair_plain(tokenizer, context, continuation, start_token_id(tokenizer, start_token))
    if context == "":
        cont = encode(tokenizer, continuation, add_special_tokens=False)
        prefix = prefix_token_id(tokenizer)
        if cont and cont[0] == prefix:
            return cont[:1], cont[1:]
        return [prefix], cont
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = encode(tokenizer, context + continuation)
    ctx = encode(tokenizer, context)
    return ctx, whole[len(ctx):]


def _encode_pair_plain(tokenizer, context: str, continuation: str, start: int | None) -> tuple[list[int], list[int]]:
    head = [] if start is None else [start]
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    ctx = encode(tokenizer, context, add_special_tokens=False) if context else []
    whole = encode(tokenizer, context + continuation, add_special_tokens=False)
    return head + ctx, whole[len(ctx):]


def truncate_left(ids: list[int], limit: int, bos_id: int | None) -> tuple[list[int], int]:
    """Keep the last tokens of a prompt so that it has at most `limit`; returns (ids, tokens cut).

    The paper's prompts are cut from the left to fit the context; a leading BOS is kept, because the model
    has never seen text without one.
    """
    if len(ids) <= limit:
        return ids, 0
    keep_bos = bos_id is not None and ids and ids[0] == bos_id and limit > 1
    kept = [bos_id, *ids[len(ids) - limit + 1:]] if keep_bos else ids[len(ids) - limit:]
    return kept, len(ids) - len(kept)


# -- completions, shared by every backend -----------------------------------------------------------------

# How many prompt tokens give the decoder enough context to render the first completion token's leading
# space the way an incremental (vLLM-style) detokenizer does.
_DECODE_CONTEXT = 6


def decode_continuation(tokenizer, prompt_ids: list[int] | tuple[int, ...], new_ids: list[int]) -> str:
    """Text of `new_ids` as it continues the prompt (SentencePiece drops a leading space when decoding a
    fragment alone; vLLM keeps it, and so do we)."""
    tail = list(prompt_ids[-_DECODE_CONTEXT:])
    head = tokenizer.decode(tail, skip_special_tokens=True)
    full = tokenizer.decode(tail + list(new_ids), skip_special_tokens=True)
    if full.startswith(head):
        return full[len(head):]
    return tokenizer.decode(list(new_ids), skip_special_tokens=True)


def cut_at_stop(text: str, stops: tuple[str, ...] | list[str]) -> tuple[str, bool]:
    """Text before the earliest stop string (the stop string itself is not returned, as in vLLM)."""
    best = -1
    for stop in stops:
        at = text.find(stop)
        if at != -1 and (best == -1 or at < best):
            best = at
    return (text, False) if best == -1 else (text[:best], True)
