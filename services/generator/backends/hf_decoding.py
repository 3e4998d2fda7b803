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

A row whose scores stop being numbers (NaN, +inf, or every token at -inf: an overflowing penalty, a
constraint with no way out, broken weights) fails alone: `RowSampler` flags it and lets it draw from
harmless scores, and `RowStopper` answers its future with `NonFiniteScores` (INTERNAL) while the other
rows of the batch run on. Drawing from NaN would otherwise raise in `torch.multinomial` and fail them all.

A decoding step waits for the GPU once: penalties come from per-row token tables kept on the device
(updated with the step's new tokens, never recounted), greedy rows take one batched argmax, sampled rows
draw without reading anything back, and the stopper reads only the last few tokens of every row (a row's
whole output only on the step it finishes).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria

from services.common.errors import PolyglotError
from services.common.presets import SamplingParams
from services.generator.backends.hf_structured import RowConstraint
from services.generator.engine import Completion, cut_at_stop, decode_continuation, is_abandoned

GREEDY_BELOW = 1e-5  # vLLM's _SAMPLING_EPS: temperatures under it mean argmax


class NonFiniteScores(PolyglotError):
    """One row's scores became NaN or infinite (code INTERNAL); the rest of its batch is unaffected."""


def non_finite_rows(logits: torch.Tensor) -> torch.Tensor:
    """[rows] bool: rows with NaN or +inf scores, or with no finite score left (-inf alone is a mask). One
    reduction: a row's maximum is NaN if any score is, +inf if any is, -inf only if all are."""
    return ~torch.isfinite(logits.amax(dim=-1))


def draw_token(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> torch.Tensor:
    """One row's next token (a 0-d tensor, left on the device) from its already penalised float32 logits.

    Top-k runs first and top-p only over its survivors, as in vLLM; the draw is made over the surviving
    candidates alone (sorting and sampling the whole 32k vocabulary per token would cost ~10 ms). Tokens
    past the top-p cut get probability zero rather than being dropped, which draws the same token without
    the host round trip that boolean indexing costs."""
    if params.temperature < GREEDY_BELOW:
        return torch.argmax(logits)
    logits = logits / params.temperature
    vocab = logits.shape[-1]
    if 0 < params.top_k < vocab:
        values, order = torch.topk(logits, params.top_k)  # sorted, largest first
    elif params.top_p < 1.0:
        values, order = torch.sort(logits, descending=True)
    else:
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs, 1, generator=generator)[0]
    if params.top_p < 1.0:
        probs = torch.softmax(values, dim=-1)
        mass_above = torch.cumsum(probs, dim=-1) - probs
        keep = mass_above < params.top_p  # the token that crosses top_p is kept (vLLM)
        keep[0] = True
        values = values.masked_fill(~keep, float("-inf"))
    pick = torch.multinomial(torch.softmax(values, dim=-1), 1, generator=generator)
    return order.gather(0, pick)[0]  # indexing with the tensor itself would read it back


def choose_token(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """`draw_token` as a Python int."""
    return int(draw_token(logits, params, generator))


class RowSampler(LogitsProcessor):
    """Each row's choice as the only finite logit. Penalties are applied to the whole batch at once from
    per-row token tables kept on the device and updated with each step's new tokens, so a step costs no
    host round trip (rows with a structured-output constraint excepted: the library reads their tokens)."""

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
        self.sampled_rows = [i for i, p in enumerate(params) if p.temperature >= GREEDY_BELOW]
        self.repetition = any(p.repetition_penalty != 1.0 for p in params)
        self.frequency = any(p.frequency_penalty != 0.0 for p in params)
        self.seen: torch.Tensor | None = None  # [rows, vocab] bool: in the prompt or output (repetition)
        self.counts: torch.Tensor | None = None  # [rows, vocab] float32: times generated (frequency)
        self.columns = 0  # columns of input_ids already entered into the tables
        self.failed: torch.Tensor | None = None  # [rows] bool, on the device: scores went non-finite

    def _update_tables(self, input_ids: torch.LongTensor, vocab: int) -> None:
        rows, width = input_ids.shape
        device = input_ids.device
        if self.seen is None:
            self.seen = torch.zeros((rows, vocab + 1), dtype=torch.bool, device=device)
            self.counts = torch.zeros((rows, vocab + 1), dtype=torch.float32, device=device)
            starts = torch.tensor(self.prompt_starts, device=device)[:, None]
            self.pad_columns = torch.arange(self.prompt_width, device=device)[None] < starts
            # Copied to the device once: a host-to-device copy waits for the GPU too.
            self.repetition_penalty = torch.tensor([p.repetition_penalty for p in self.params], device=device)[:, None]
            self.frequency_penalty = torch.tensor([p.frequency_penalty for p in self.params], device=device)[:, None]
        if self.columns < self.prompt_width:  # the prompt: left padding goes to a spare column, dropped later
            prompt = input_ids[:, self.columns : self.prompt_width]
            self.seen.scatter_(1, prompt.masked_fill(self.pad_columns[:, self.columns :], vocab), True)
        generated = input_ids[:, max(self.columns, self.prompt_width) :]
        if generated.numel():
            self.seen.scatter_(1, generated, True)
            self.counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=torch.float32))
        self.columns = width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores.to(torch.float32, copy=True)  # never write into the model's scores
        vocab = logits.shape[-1]
        for i, constraint in enumerate(self.constraints):
            if constraint is not None:
                generated = input_ids[i, self.prompt_width :].tolist()
                mask = constraint.mask_for(generated, vocab, logits.device)
                if mask is not None:
                    logits[i] += mask
        if self.repetition or self.frequency:
            self._update_tables(input_ids, vocab)
        if self.repetition:
            penalty = self.repetition_penalty
            penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
            logits = torch.where(self.seen[:, :vocab], penalised, logits)
        if self.frequency:
            logits = logits - self.frequency_penalty * self.counts[:, :vocab]
        # No host read here: the flags travel with the stopper's one read-back of the step.
        bad = non_finite_rows(logits)
        self.failed = bad if self.failed is None else self.failed | bad
        logits.masked_fill_(bad[:, None], 0.0)  # a failed row draws from flat scores; its text is dropped
        tokens = torch.argmax(logits, dim=-1)  # the greedy rows' choice; sampled rows overwrite theirs
        for i in self.sampled_rows:  # each row draws from its own generator: one small kernel chain per row
            tokens[i] = draw_token(logits[i], self.params[i], self.generators[i])
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tokens[:, None], 0.0)


@dataclass(eq=False)
class RowStopper(StoppingCriteria):
    """Marks rows done and resolves their futures the step they finish.

    A step reads back one small block: the last few tokens of every row, as many as the longest stop string
    of a running row needs (one token when no row has stop strings). A row's whole output is read back
    only on the step it finishes."""

    tokenizer: Any
    prompts: list[tuple[int, ...]]
    params: list[SamplingParams]
    futures: list[Future]
    prompt_width: int
    eos_ids: set[int]
    on_done: Callable[[int], None] | None = None
    sampler: RowSampler | None = None  # whose `failed` flags fail rows alone

    def __post_init__(self) -> None:
        self.done = [f.done() for f in self.futures]
        # A stop string of n characters lies within the last n + a few tokens (a token has ≥ 1 character;
        # byte-fallback pieces need a few more), so each step decodes only that tail to look for it.
        self.tails = [max((len(s) for s in p.stop), default=0) + 4 if p.stop else 1 for p in self.params]
        self._flags: torch.Tensor | None = None  # `done` on the device, rebuilt only when a row finishes
        self._flags_done = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_width
        for i, done in enumerate(self.done):
            if not done and is_abandoned(self.futures[i]):  # its caller is gone: stop spending steps on it
                self._abandon(i)
        running = [i for i, done in enumerate(self.done) if not done]
        if generated > 0 and running:
            window = min(max(self.tails[i] for i in running), generated)
            block = input_ids[:, -window:]
            failed = self.sampler.failed if self.sampler is not None else None
            if failed is not None:
                block = torch.cat([block, failed[:, None].to(block.dtype)], dim=1)
            rows = block.tolist()  # the step's one read-back
            for i in running:
                params, tail = self.params[i], rows[i][:window]
                if failed is not None and rows[i][window]:
                    self._fail(i, generated)
                elif tail[-1] in self.eos_ids:
                    ids = self._generated(input_ids, i)
                    self._finish(i, ids, self._text(i, ids[:-1]), "stop")
                elif params.stop and self._tail_has_stop(i, tail):
                    ids = self._generated(input_ids, i)
                    text, _ = cut_at_stop(self._text(i, ids), params.stop)
                    self._finish(i, ids, text, "stop")
                elif generated >= params.max_tokens:
                    ids = self._generated(input_ids, i)
                    self._finish(i, ids, self._text(i, ids), "length")
        if self._flags is None or self._flags_done != sum(self.done):
            self._flags = torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)
            self._flags_done = sum(self.done)
        return self._flags

    def _generated(self, input_ids: torch.LongTensor, i: int) -> list[int]:
        return input_ids[i, self.prompt_width :].tolist()

    def finish_leftovers(self, sequences: torch.LongTensor) -> None:
        """Rows `generate` stopped without us (it hit its own max_new_tokens first): resolve as `length`."""
        failed = self.sampler.failed.tolist() if self.sampler is not None and self.sampler.failed is not None else []
        for i, ids in enumerate(sequences[:, self.prompt_width :].tolist()):
            if not self.done[i] and failed and failed[i]:
                self._fail(i, len(ids))
            elif not self.done[i]:
                ids = ids[: self.params[i].max_tokens]
                text, hit = cut_at_stop(self._text(i, ids), self.params[i].stop)
                self._finish(i, ids, text, "stop" if hit else "length")

    def _text(self, i: int, ids: list[int]) -> str:
        return decode_continuation(self.tokenizer, self.prompts[i], ids)

    def _tail_has_stop(self, i: int, ids: list[int]) -> bool:
        tail = self.tokenizer.decode(ids[-self.tails[i] :], skip_special_tokens=True)
        return any(stop in tail for stop in self.params[i].stop)

    def _abandon(self, i: int) -> None:
        self.done[i] = True
        if not self.futures[i].done():
            self.futures[i].set_exception(CancelledError("the caller gave up on this row; it was dropped"))
        if self.on_done:
            self.on_done(i)

    def _fail(self, i: int, step: int) -> None:
        self.done[i] = True
        if not self.futures[i].done():
            self.futures[i].set_exception(
                NonFiniteScores(
                    f"the model's scores for this row were NaN or infinite at new token {step} (its sampling "
                    "parameters or the weights); the row was dropped, the others in its batch were not"
                )
            )
        if self.on_done:
            self.on_done(i)

    def _finish(self, i: int, ids: list[int], text: str, reason: str) -> None:
        self.done[i] = True
        if not self.futures[i].done():
            self.futures[i].set_result(Completion(text, reason, len(ids), tuple(ids)))
        if self.on_done:
            self.on_done(i)
