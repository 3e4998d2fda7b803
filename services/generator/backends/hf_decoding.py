"""Per-row decoding for transformers' `generate`: vLLM's sampling rules, seeds, stop strings and max_tokens.

transformers applies one generation config to a whole batch and has no additive frequency penalty. To
batch rows that differ in parameters and seeds, `generate` runs in greedy mode and `RowSampler` — a logits
processor — makes each row's choice itself and leaves only the chosen token finite, so greedy's argmax
picks it. Each row samples with its own seeded `torch.Generator`, one draw per step, so a row's text does
not depend on which other rows share its batch (up to float rounding of the padded matmuls).

A row with structured output first has the tokens its constraint forbids masked (`hf_structured.py`);
rows without one are left exactly as they were.

The order of operations follows vLLM's sampler: repetition penalty (prompt + output tokens,
multiplicative), frequency penalty (output tokens, `logit -= penalty × count`, as in the OpenAI API), then
temperature, top-k, top-p and a draw; temperatures below 1e-5 are greedy.

`RowStopper` ends each row on EOS, a stop string, or its own max_tokens, and resolves the row's future at
that moment so the service can stream it while the rest of the batch is still running.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria

from services.common.presets import SamplingParams
from services.generator.backends.hf_structured import RowConstraint
from services.generator.engine import Completion, cut_at_stop, decode_continuation

GREEDY_BELOW = 1e-5  # vLLM's _SAMPLING_EPS: temperatures under it mean argmax


def choose_token(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """One row's next token from its (already penalised) float32 logits.

    Top-k runs first and top-p only over its survivors, as in vLLM; the draw is made over the surviving
    candidates alone (sorting and sampling the whole 32k vocabulary per token would cost ~10 ms)."""
    if params.temperature < GREEDY_BELOW:
        return int(torch.argmax(logits))
    logits = logits / params.temperature
    vocab = logits.shape[-1]
    if 0 < params.top_k < vocab:
        values, order = torch.topk(logits, params.top_k)  # sorted, largest first
    elif params.top_p < 1.0:
        values, order = torch.sort(logits, descending=True)
    else:
        probs = torch.softmax(logits, dim=-1)
        return int(torch.multinomial(probs, 1, generator=generator))
    if params.top_p < 1.0:
        probs = torch.softmax(values, dim=-1)
        mass_above = torch.cumsum(probs, dim=-1) - probs
        keep = mass_above < params.top_p  # the token that crosses top_p is kept (vLLM)
        keep[0] = True
        values, order = values[keep], order[keep]
    pick = torch.multinomial(torch.softmax(values, dim=-1), 1, generator=generator)
    return int(order[pick])


class RowSampler(LogitsProcessor):
    def __init__(
        self,
        params: list[SamplingParams],
        prompt_width: int,
        prompt_starts: list[int],
        generators: list[torch.Generator | None],
        constraints: list[RowConstraint | None] | None = None,
    ):
        self.params = params
        self.prompt_width = prompt_width  # generated tokens start here in every (left-padded) row
        self.prompt_starts = prompt_starts  # first real (non-pad) token of each row
        self.generators = generators
        self.constraints = constraints or [None] * len(params)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        out = torch.full_like(scores, float("-inf"))
        for i, params in enumerate(self.params):
            logits = scores[i].float()
            constraint = self.constraints[i]
            if constraint is not None:
                generated = input_ids[i, self.prompt_width:].tolist()
                mask = constraint.mask_for(generated, logits.shape[-1], logits.device)
                if mask is not None:
                    logits = logits + mask
            if params.repetition_penalty != 1.0:
                seen = torch.unique(input_ids[i, self.prompt_starts[i]:])
                picked = logits[seen]
                logits = logits.clone()
                logits[seen] = torch.where(
                    picked > 0, picked / params.repetition_penalty, picked * params.repetition_penalty
                )
            if params.frequency_penalty != 0.0 and input_ids.shape[1] > self.prompt_width:
                generated = input_ids[i, self.prompt_width:]
                counts = torch.bincount(generated, minlength=logits.shape[-1])[: logits.shape[-1]]
                logits = logits - params.frequency_penalty * counts.to(logits.dtype)
            token = choose_token(logits, params, self.generators[i])
            out[i, token] = 0.0
        return out


@dataclass(eq=False)
class RowStopper(StoppingCriteria):
    """Marks rows done and resolves their futures the step they finish."""

    tokenizer: Any
    prompts: list[tuple[int, ...]]
    params: list[SamplingParams]
    futures: list[Future]
    prompt_width: int
    eos_ids: set[int]
    on_done: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        self.done = [f.done() for f in self.futures]
        # A stop string of n characters lies within the last n + a few tokens (a token has ≥ 1 character;
        # byte-fallback pieces need a few more), so each step decodes only that tail to look for it.
        self.tails = [max((len(s) for s in p.stop), default=0) + 4 for p in self.params]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        generated = input_ids[:, self.prompt_width:].tolist()
        for i, ids in enumerate(generated):
            if self.done[i] or not ids:
                continue
            params = self.params[i]
            if ids[-1] in self.eos_ids:
                self._finish(i, ids, self._text(i, ids[:-1]), "stop")
            elif params.stop and self._tail_has_stop(i, ids):
                text, _ = cut_at_stop(self._text(i, ids), params.stop)
                self._finish(i, ids, text, "stop")
            elif len(ids) >= params.max_tokens:
                self._finish(i, ids, self._text(i, ids), "length")
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)

    def finish_leftovers(self, sequences: torch.LongTensor) -> None:
        """Rows `generate` stopped without us (it hit its own max_new_tokens first): resolve as `length`."""
        for i, ids in enumerate(sequences[:, self.prompt_width:].tolist()):
            if not self.done[i]:
                ids = ids[: self.params[i].max_tokens]
                text, hit = cut_at_stop(self._text(i, ids), self.params[i].stop)
                self._finish(i, ids, text, "stop" if hit else "length")

    def _text(self, i: int, ids: list[int]) -> str:
        return decode_continuation(self.tokenizer, self.prompts[i], ids)

    def _tail_has_stop(self, i: int, ids: list[int]) -> bool:
        tail = self.tokenizer.decode(ids[-self.tails[i]:], skip_special_tokens=True)
        return any(stop in tail for stop in self.params[i].stop)

    def _finish(self, i: int, ids: list[int], text: str, reason: str) -> None:
        self.done[i] = True
        if not self.futures[i].done():
            self.futures[i].set_result(Completion(text, reason, len(ids), tuple(ids)))
        if self.on_done:
            self.on_done(i)
