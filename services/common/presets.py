"""Sampling parameters and the paper's named decoding presets.

The generator service and the study config both take their decoding settings from here, so the
numbers the paper reports (§3.3, Appendix) live in exactly one place:

- `chat`: open-ended answers for the chat evaluation (top-p 0.9, top-k 50, temperature 0.8,
  frequency penalty 0.2, up to 1024 new tokens);
- `constrained`: near-greedy decoding for tasks with a short gold answer (XQuAD, X-CSQA), temperature
  0.001 rather than 0 so that every backend samples through the same code path.
- `lcb`: the Language Confusion Benchmark's settings (top-p 0.75, temperature 0.3, up to 100 new tokens).

Both stop at the Guanaco role markers, so a model never writes the next turn itself.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.common.errors import InvalidArgument

__all__ = [
    "DATA_SEED",
    "GUANACO_STOPS",
    "PAPER_STOPS",
    "PAPER_SEEDS",
    "PRESETS",
    "SamplingParams",
    "get_preset",
]

# The paper's inference seeds (every evaluation runs once per seed) and its data-sampling seed.
PAPER_SEEDS: tuple[int, ...] = (0, 42, 723)
DATA_SEED: int = 42

# Guanaco's turn markers: the prompt format the models are tuned on.
GUANACO_STOPS: tuple[str, ...] = ("### Human:", "### Assistant:")
# The paper's inference scripts stop on these four, in this order (colon and bare forms of both markers).
PAPER_STOPS: tuple[str, ...] = ("### Human:", "### Assistant:", "### Human", "### Assistant")


class SamplingParams(BaseModel):
    """Decoding settings for one generation request, in vLLM/OpenAI terms.

    Immutable: derive variants with `model_copy(update=...)` or `with_seed`.
    """

    # Bounded, finite ranges: one row's parameters must not be able to overflow its logits (a penalty of
    # 1e-45 divides them into infinity) and fail the other requests batched with it. NaN and ±inf are refused.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    temperature: float = Field(
        1.0, ge=0.0, le=100.0, description="Softmax temperature; 0 means greedy decoding."
    )
    top_p: float = Field(
        1.0, gt=0.0, le=1.0, description="Nucleus sampling: keep the smallest token set with this mass."
    )
    top_k: int = Field(
        0, ge=0, le=1_000_000, description="Keep only the k most likely tokens; 0 disables the cut."
    )
    frequency_penalty: float = Field(
        0.0,
        ge=-2.0,
        le=2.0,
        description="Subtract penalty × (times the token occurred in the output so far) from its logit "
        "(vLLM/OpenAI semantics; the hf backend implements it with a logits processor).",
    )
    repetition_penalty: float = Field(
        1.0,
        ge=0.01,
        le=100.0,
        description="Multiplicative penalty on already seen tokens (1 disables it; in use 1–1.5).",
    )
    max_tokens: int = Field(256, gt=0, description="Maximum number of new tokens to generate.")
    stop: tuple[str, ...] = Field(
        (), description="Strings that end generation; the stop string itself is not returned."
    )
    seed: int | None = Field(None, ge=0, description="Random seed for sampling; None lets the backend choose.")

    def with_seed(self, seed: int | None) -> SamplingParams:
        return self.model_copy(update={"seed": seed})

    def with_overrides(self, **overrides: Any) -> SamplingParams:
        """A validated copy with some fields replaced (model_copy alone would skip validation)."""
        return SamplingParams.model_validate({**self.model_dump(), **overrides})


PRESETS: MappingProxyType[str, SamplingParams] = MappingProxyType(
    {
        "chat": SamplingParams(
            temperature=0.8,
            top_p=0.9,
            top_k=50,
            frequency_penalty=0.2,
            max_tokens=1024,
            stop=GUANACO_STOPS,
        ),
        # Answers are scored after cutting at the first line break or 50 characters: 64 tokens suffice.
        "constrained": SamplingParams(temperature=0.001, max_tokens=64, stop=GUANACO_STOPS),
        # The paper's inference defaults (top-p 0.9, top-k 50, frequency penalty 0.2, 1,024 tokens) with its four
        # stop strings: `paper_chat` as they are, `paper_constrained` with only the temperature lowered to 0.001.
        "paper_chat": SamplingParams(
            temperature=0.8, top_p=0.9, top_k=50, frequency_penalty=0.2, max_tokens=1024, stop=PAPER_STOPS
        ),
        "paper_constrained": SamplingParams(
            temperature=0.001, top_p=0.9, top_k=50, frequency_penalty=0.2, max_tokens=1024, stop=PAPER_STOPS
        ),
        # The Language Confusion Benchmark's decoding (Marchisio et al., 2024): nucleus 0.75, temperature 0.3.
        "lcb": SamplingParams(temperature=0.3, top_p=0.75, max_tokens=100, stop=GUANACO_STOPS),
    }
)


def get_preset(name: str) -> SamplingParams:
    """The named preset; raises InvalidArgument(field="preset") if there is none by that name."""
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown sampling preset {name!r}; known presets: {', '.join(PRESETS)}", field="preset"
        ) from None
