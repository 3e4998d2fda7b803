"""vLLM's sampling rules as a transformers logits processor: penalties, temperature, top-k/top-p, seeds."""

from __future__ import annotations

import torch

from services.common.presets import SamplingParams
from services.generator.backends.hf_decoding import RowSampler, choose_token


def params(**kw) -> SamplingParams:
    return SamplingParams(**kw)


def seeded(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


LOGITS = torch.tensor([2.0, 1.9, 1.8, 0.5, -1.0, -3.0])


def test_tiny_temperatures_are_greedy():
    assert choose_token(LOGITS, params(temperature=0.0), seeded(0)) == 0
    assert choose_token(LOGITS, params(temperature=1e-6), seeded(0)) == 0


def test_constrained_preset_temperature_is_practically_greedy():
    picks = {choose_token(LOGITS, params(temperature=0.001), seeded(s)) for s in range(50)}
    assert picks == {0}


def test_top_k_and_top_p_cut_the_candidates():
    top2 = {choose_token(LOGITS, params(temperature=1.0, top_k=2), seeded(s)) for s in range(300)}
    assert top2 == {0, 1}
    # top_p=0.3: token 0 alone has ~31 % of the mass, so it is the only survivor.
    assert {choose_token(LOGITS, params(temperature=1.0, top_p=0.3), seeded(s)) for s in range(100)} == {0}
    # top_p=0.5: the token that crosses the threshold is kept (vLLM), so two tokens survive.
    assert {choose_token(LOGITS, params(temperature=1.0, top_p=0.5), seeded(s)) for s in range(300)} == {0, 1}


def test_the_same_seed_draws_the_same_token():
    draws = [choose_token(LOGITS, params(temperature=1.5), seeded(7)) for _ in range(5)]
    assert len(set(draws)) == 1
    assert len({choose_token(LOGITS, params(temperature=1.5), seeded(s)) for s in range(200)}) > 3


def _step(sampler: RowSampler, prompt: list[int], generated: list[int], logits: torch.Tensor) -> int:
    input_ids = torch.tensor([prompt + generated])
    out = sampler(input_ids, logits[None].clone())
    assert int(torch.isfinite(out[0]).sum()) == 1  # exactly one survivor: greedy picks it
    return int(out[0].argmax())


def test_frequency_penalty_subtracts_per_generated_occurrence():
    logits = torch.tensor([1.0, 0.7, 0.0, 0.0])
    greedy_fp = params(temperature=0.0, frequency_penalty=0.2)
    sampler = RowSampler([greedy_fp], prompt_width=2, prompt_starts=[0], generators=[None])
    # Token 0 leads by 0.3: one occurrence (−0.2) keeps it ahead, two (−0.4) do not.
    assert _step(sampler, [0, 0], [], logits) == 0  # prompt tokens are not counted
    assert _step(sampler, [3, 3], [0], logits) == 0
    assert _step(sampler, [3, 3], [0, 0], logits) == 1


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    logits = torch.tensor([1.0, 0.6, -0.2, -0.1])
    sampler = RowSampler([params(temperature=0.0, repetition_penalty=2.0)], 1, [0], [None])
    # Token 0 seen (in the prompt): 1.0 / 2 = 0.5 < 0.6.
    assert _step(sampler, [0], [], logits) == 1
    sampler = RowSampler([params(temperature=0.0, repetition_penalty=2.0)], 1, [0], [None])
    # Negative logits get more negative: token 3 (−0.1 → −0.2) ties below token 2 only if penalised.
    assert _step(sampler, [3], [], torch.tensor([-1.0, -1.0, -0.15, -0.1])) == 2


def test_each_row_keeps_its_own_parameters_and_seed():
    logits = torch.tensor([[2.0, 1.9, 1.8, 0.5], [2.0, 1.9, 1.8, 0.5]])
    rows = [params(temperature=0.0), params(temperature=2.0, seed=1)]
    draws = set()
    for seed in range(40):
        sampler = RowSampler(rows, 1, [0, 0], [None, seeded(seed)])
        out = sampler(torch.tensor([[1], [1]]), logits.clone())
        assert int(out[0].argmax()) == 0  # the greedy row never moves
        draws.add(int(out[1].argmax()))
    assert len(draws) > 1  # the sampling row does
