"""The hf backend's batched decoding step changes no output: greedy batches equal plain `model.generate`, and
the penalty tables kept across steps equal penalties recomputed from the whole history."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from services.common.presets import SamplingParams
from services.generator.backends.hf_decoding import RowSampler
from services.generator.engine import GenRow
from tests.fixtures.generator import generator_settings

PROMPTS = ["### Human: Hello, who are you?### Assistant:", "Once upon a time", "### Human: Name three colours."]


def test_penalty_tables_kept_across_steps_equal_a_recount_of_the_history():
    torch.manual_seed(0)
    vocab, width = 64, 5
    rows = [
        SamplingParams(temperature=0.0, repetition_penalty=1.3, frequency_penalty=0.4),
        SamplingParams(temperature=0.0),
        SamplingParams(temperature=0.9, top_k=8, repetition_penalty=1.1, frequency_penalty=0.2, seed=3),
    ]
    starts = [0, 2, 4]  # left padding of 0, 2 and 4 columns
    ids = torch.randint(0, vocab, (len(rows), width))
    kept_rng = [None, None, torch.Generator().manual_seed(3)]
    recount_rng = [None, None, torch.Generator().manual_seed(3)]
    kept = RowSampler(rows, width, starts, kept_rng)
    for _ in range(12):
        scores = torch.randn(len(rows), vocab) * 2
        # A new sampler per step sees the whole history at once: the tables built from scratch.
        recounted = RowSampler(rows, width, starts, recount_rng)(ids, scores.clone())
        chosen = kept(ids, scores.clone())
        assert torch.equal(chosen, recounted)
        assert (torch.isfinite(chosen).sum(-1) == 1).all()
        ids = torch.cat([ids, chosen.argmax(-1, keepdim=True)], dim=1)


@pytest.fixture(scope="module")
def backend(tiny_llama_dir: Path, tmp_path_factory):
    from services.generator.backends.hf import HFBackend

    engine = HFBackend(generator_settings(tiny_llama_dir, "hf", tmp_path_factory.mktemp("cache"), threads=1))
    yield engine
    engine.close()


def test_a_greedy_batch_equals_plain_generate_row_by_row(backend):
    new_tokens = 12
    prompts = [tuple(backend.tokenizer(p).input_ids) for p in PROMPTS]
    rows = [GenRow(p, SamplingParams(temperature=0.0, max_tokens=new_tokens)) for p in prompts]
    completions = [f.result(timeout=120) for f in backend.submit_generate(rows)]
    model = backend.model
    for prompt, completion in zip(prompts, completions, strict=True):
        with torch.inference_mode():
            plain = model.generate(
                torch.tensor([prompt]), do_sample=False, max_new_tokens=new_tokens, pad_token_id=backend.pad_id
            )[0, len(prompt) :].tolist()
        if backend.eos_ids & set(plain):
            plain = plain[: min(plain.index(e) for e in backend.eos_ids if e in plain) + 1]
        assert list(completion.token_ids) == plain
        assert completion.finish_reason == ("stop" if backend.eos_ids & set(plain) else "length")
