"""The text rules every backend shares: lm-eval's (context, continuation) split, left truncation, stops."""

from __future__ import annotations

import pytest

from services.generator.engine import (
    cut_at_stop,
    decode_continuation,
    encode,
    encode_pair,
    prefix_token_id,
    truncate_left,
)

PAIRS = [
    ("The capital of France is", " Paris"),
    ("Question: 2+2=", "4"),
    ("Hello ", "world"),
    ("Trailing spaces   ", "  go along"),
    ("Привет, как", " дела?"),
    ("中文的句子", "很好"),
    ("Premise: it rains. Question: is it wet? Answer:", " Yes"),
]


@pytest.fixture(scope="module")
def tokenizer(llama2_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(llama2_tokenizer_dir))


@pytest.fixture(scope="module")
def lm_eval_hflm(tiny_llama_dir):
    """lm-evaluation-harness's own HF model class on the tiny model: the reference for tokenisation."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=1)


@pytest.mark.slow
@pytest.mark.parametrize(("context", "continuation"), PAIRS)
def test_encode_pair_is_lm_evals_split(lm_eval_hflm, context, continuation):
    ours = encode_pair(lm_eval_hflm.tokenizer, context, continuation)
    assert tuple(ours) == tuple(lm_eval_hflm._encode_pair(context, continuation))


def test_encode_pair_splits_at_the_boundary_the_model_sees(tokenizer):
    ctx, cont = encode_pair(tokenizer, "Hello ", "world")
    assert ctx == encode(tokenizer, "Hello")  # the trailing space moved to the continuation
    assert ctx + cont == encode(tokenizer, "Hello world")


def test_empty_context_is_conditioned_on_bos(tokenizer):
    ctx, cont = encode_pair(tokenizer, "", "Hello world")
    assert ctx == [prefix_token_id(tokenizer)] == [tokenizer.bos_token_id]
    assert cont == encode(tokenizer, "Hello world", add_special_tokens=False)


def test_truncate_left_keeps_bos_and_the_end():
    ids = [1, *range(100, 110)]
    assert truncate_left(ids, 20, bos_id=1) == (ids, 0)
    kept, cut = truncate_left(ids, 4, bos_id=1)
    assert kept == [1, 107, 108, 109] and cut == 7
    kept, cut = truncate_left([5, 6, 7, 8], 2, bos_id=1)
    assert kept == [7, 8] and cut == 2


def test_cut_at_stop_takes_the_earliest_stop():
    text = "an answer\n### Human: next\n### Assistant: more"
    assert cut_at_stop(text, ("### Assistant:", "### Human:")) == ("an answer\n", True)
    assert cut_at_stop("no stop here", ("### Human:",)) == ("no stop here", False)
    assert cut_at_stop("anything", ()) == ("anything", False)


def test_decode_continuation_keeps_the_leading_space(tokenizer):
    prompt = encode(tokenizer, "Hello")
    new = encode(tokenizer, "Hello world")[len(prompt) :]
    assert tokenizer.decode(new, skip_special_tokens=True) == "world"  # SentencePiece drops it alone
    assert decode_continuation(tokenizer, prompt, new) == " world"
