"""What the generator client gives back, as plain dataclasses (`services.generator.client` maps the protos)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.errors import ItemError
from services.generator.core import ModelEntry


@dataclass(frozen=True)
class Completion:
    """One prompt's completion; `index` is the prompt's position in the request."""

    index: int
    text: str
    finish_reason: str  # "stop", "length", or "error" (then `error` says why)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated_tokens: int = 0  # prompt tokens cut from the left to fit the context
    error: ItemError | None = None


@dataclass(frozen=True)
class ScoreResult:
    """log P(continuation | context), summed over the continuation's tokens."""

    index: int
    logprob: float
    is_greedy: bool  # every continuation token is the argmax
    num_tokens: int
    error: ItemError | None = None


@dataclass(frozen=True)
class Models:
    """What the generator serves: `ModelEntry` is the core's own record of a base model or adapter."""

    models: list[ModelEntry]
    max_loaded_adapters: int
