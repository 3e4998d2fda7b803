"""Score's `start_token`: "eos" scores exactly the token sequence lm-evaluation-harness 0.3 (commit 3ccea2b2,
the paper's) builds for XNLI, "" keeps lm-eval 0.4's BOS sequences.

The harness's token arithmetic is re-implemented here, in the test, from its source (`gpt2.HFLM`:
`tok_encode` = `tokenizer.encode(s, add_special_tokens=False)`, `eot_token_id` = the tokenizer's EOS,
`max_length` = the model's `max_position_embeddings`; `BaseLM.loglikelihood` / `loglikelihood_rolling`,
`utils.get_rolling_token_windows`, `utils.make_disjoint_window`; `_loglikelihood_tokens`' input
`(context + continuation)[-(max_length + 1):][:-1]`). The tiny Llama is random: only the arithmetic counts.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/unit/generator/test_score_start_token.py -q
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from flows.config import load_config
from flows.evals import TASKS
from flows.evals.xnli import continuations, read_tsv
from flows.steps import _score_choices
from services.common.errors import InvalidArgument
from tests.fixtures.generator import generator_settings

REPO = Path(__file__).resolve().parents[3]

MAX_CONTEXT = 48  # small, so a sentence at and past the window's edge is cheap to build
LANGUAGES = ("en", "de", "zh", "ar")


# -- lm-eval 0.3's token arithmetic (test-only re-implementation) ------------------------------------------


def rolling_token_windows(tokens: list[int], prefix: int, max_seq_len: int, context_len: int = 1):
    """`utils.get_rolling_token_windows`: the first window predicts every token after `prefix`; later ones
    predict up to max_seq_len - context_len + 1 tokens each, with the tokens before them as input."""
    if not tokens:
        return
    pred_len = max_seq_len - context_len + 1
    first = min(max_seq_len, len(tokens))
    yield [prefix, *tokens[: first - 1]], tokens[:first]
    predicted = first
    while predicted < len(tokens):
        window = min(len(tokens) - predicted, pred_len)
        end = predicted + window
        yield tokens[end - max_seq_len - 1 : end - 1], tokens[end - window : end]
        predicted += window


def disjoint(pair):
    """`utils.make_disjoint_window`: drop from the input the tokens that are also predicted."""
    inputs, predicted = pair
    return inputs[: len(inputs) - (len(predicted) - 1)], predicted


def harness_sequences(tokenizer, string: str, max_length: int) -> list[tuple[list[int], int]]:
    """`loglikelihood_rolling((string,))` per window, through `_loglikelihood_tokens`: (the sequence whose
    all-but-last tokens are the model's input, how many tokens at its end are scored)."""
    tokens = tokenizer.encode(string, add_special_tokens=False)
    windows = [disjoint(w) for w in rolling_token_windows(tokens, tokenizer.eos_token_id, max_length)]
    return [((ctx + cont)[-(max_length + 1) :], len(cont)) for ctx, cont in windows]


def harness_loglikelihood_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """`BaseLM.loglikelihood` for one (context, continuation): an empty context is `[eot_token_id]`; the
    two strings are encoded separately, without special tokens."""
    ctx = [tokenizer.eos_token_id] if context == "" else tokenizer.encode(context, add_special_tokens=False)
    return ctx, tokenizer.encode(continuation, add_special_tokens=False)


# -- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generator(tiny_llama_dir: Path, tmp_path_factory):
    from services.generator.factory import create_generator

    settings = generator_settings(
        tiny_llama_dir, "hf", tmp_path_factory.mktemp("cache"), threads=1, max_context=MAX_CONTEXT
    )
    core = create_generator(settings)
    yield core
    core.engine.close()


@pytest.fixture(scope="module")
def client(generator):
    """The same generator behind a real gRPC server on 127.0.0.1, through the typed client."""
    from services.common.inprocess import serve_in_thread
    from services.generator.client import GeneratorClient
    from services.generator.main import registrations

    with serve_in_thread(registrations(generator)) as address, GeneratorClient(address, timeout=120) as typed:
        yield typed


@pytest.fixture(scope="module")
def sentences(shared_dir: Path, generator) -> list[str]:
    """lm-eval-0.3 XNLI sentences (whole `premise, right? Yes, hypothesis`) short enough for one window."""
    tokenizer, chosen = generator.engine.tokenizer, []
    for language in LANGUAGES:
        for premise, hypothesis, _ in read_tsv(shared_dir / f"data/xnli/xnli_dev-{language}.tsv"):
            three = continuations(premise, hypothesis, language, "lm-eval-0.3")
            if all(len(tokenizer.encode(s, add_special_tokens=False)) <= MAX_CONTEXT for s in three):
                chosen.extend(three[:2])
                break
    assert len(chosen) == 2 * len(LANGUAGES)
    return chosen


def forward_logprob(model, sequence: list[int], n_scored: int) -> float:
    """Sum of log P(token) over the last `n_scored` tokens of `sequence`, by one plain forward pass."""
    with torch.inference_mode():
        logits = model(torch.tensor([sequence[:-1]])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)[-n_scored:]
    targets = torch.tensor(sequence[-n_scored:])
    return float(logprobs.gather(-1, targets[:, None]).sum())


def score(generator, items, start_token=""):
    return asyncio.run(generator.score(items, start_token=start_token))


# -- tests -------------------------------------------------------------------------------------------------


def test_eos_start_scores_exactly_the_harness_03_sequence(generator, client, sentences):
    tokenizer, model = generator.engine.tokenizer, generator.engine.model
    outcomes = client.score([("", s) for s in sentences], start_token="eos")
    for sentence, outcome in zip(sentences, outcomes, strict=True):
        ((sequence, n_scored),) = harness_sequences(tokenizer, sentence, MAX_CONTEXT)  # one window
        ctx, cont = harness_loglikelihood_pair(tokenizer, "", sentence)  # 0.3's plain loglikelihood agrees
        assert sequence == ctx + cont and sequence[0] == tokenizer.eos_token_id != tokenizer.bos_token_id
        assert outcome.error is None and outcome.num_tokens == n_scored == len(cont)
        assert outcome.logprob == pytest.approx(forward_logprob(model, sequence, n_scored), abs=1e-5)


def test_default_start_is_unchanged_lm_eval_04_bos(generator, sentences):
    tokenizer, model = generator.engine.tokenizer, generator.engine.model
    items = [("", " " + s) for s in sentences[:2]]  # 0.4's format: the target delimiter in front
    bos_scores, eos_scores = score(generator, items), score(generator, items, "eos")
    for (_, continuation), bos, eos in zip(items, bos_scores, eos_scores, strict=True):
        tokens = tokenizer.encode(continuation, add_special_tokens=False)
        sequence = [tokenizer.bos_token_id, *tokens]
        assert bos.logprob == pytest.approx(forward_logprob(model, sequence, len(tokens)), abs=1e-5)
        assert abs(bos.logprob - eos.logprob) > 1e-4  # the start token really changed


def test_a_sentence_at_the_window_edge_is_scored_and_one_past_it_refused(generator):
    tokenizer, model = generator.engine.tokenizer, generator.engine.model
    at_edge = " ".join(["a"] * MAX_CONTEXT)  # Llama: one token per word
    assert len(tokenizer.encode(at_edge, add_special_tokens=False)) == MAX_CONTEXT
    ((sequence, n_scored),) = harness_sequences(tokenizer, at_edge, MAX_CONTEXT)
    (outcome,) = score(generator, [("", at_edge)], "eos")
    assert outcome.logprob == pytest.approx(forward_logprob(model, sequence, n_scored), abs=1e-5)
    # One token more: the harness rolls a second window; Score refuses rather than scoring it differently.
    past_edge = at_edge + " a"
    assert len(harness_sequences(tokenizer, past_edge, MAX_CONTEXT)) == 2
    (refused,) = score(generator, [("", past_edge)], "eos")
    assert isinstance(refused.error, InvalidArgument) and refused.error.field == "items[0].continuation"


def test_bad_start_tokens_name_the_field(client):
    with pytest.raises(InvalidArgument, match=r"^start_token: ") as bad:  # the field, as the status names it
        client.score([("", " x")], start_token="bos")
    assert bad.value.grpc_code.name == "INVALID_ARGUMENT"
    first, second = client.score([("", " x"), ("Hi", " there")], start_token="none")
    assert (first.error.code, first.error.field) == ("INVALID_ARGUMENT", "items[0].context")
    assert second.error is None and second.num_tokens >= 1


@pytest.mark.parametrize("request_format", ["lm-eval-0.3", "lm-eval-0.4"])
def test_xnli_shards_send_their_request_formats_start_token(client, shared_dir, request_format):
    """flows' scoring step asks for EOS with lm-eval-0.3 (the hook's `score_options`) and BOS with 0.4."""
    cfg = load_config(REPO / "configs" / "smoke.yaml", {"evaluation.tasks.xnli.request_format": request_format})
    task = TASKS.get("xnli")
    options = task.options(languages=["de"], sample_size=2, data_dir=shared_dir / "data/xnli",
                           request_format=request_format)  # fmt: skip
    items = task.build_items(options, "de", seed=1)
    shard = SimpleNamespace(model=SimpleNamespace(adapter_uri=""), key="xnli-start-token", task="xnli")
    graded = _score_choices(cfg, client, task, items, shard)
    pairs = [(item.prompt, choice) for item in items for choice in item.choices]
    wanted, other = ("eos", "") if request_format == "lm-eval-0.3" else ("", "eos")
    got = [choice["logprob"] for g in graded for choice in g.sample["choices"]]
    assert got == pytest.approx([r.logprob for r in client.score(pairs, start_token=wanted)], abs=1e-5)
    assert max(abs(a - r.logprob) for a, r in zip(got, client.score(pairs, start_token=other), strict=True)) > 1e-4
