"""Row 6: `repetition_penalty=1e-45` was accepted, gave NaN probabilities, and failed the other clients' rows
batched with it (INTERNAL). Reproduced before the fix against the real generator (tiny Llama, hf backend):
a client sending the penalty shared a batch with another client's ordinary request, dividing the seen
tokens' logits by 1e-45 made them infinite, `torch.multinomial` raised on the NaN probabilities, and the
whole batch, the innocent row included, failed.

Remedies, both needed: at the boundary, `SamplingParams` (services/common/presets.py, the one source of
the ranges) takes finite values in sane ranges only (repetition penalty 0.01–100, temperature ≤ 100,
top-k ≤ 10^6), so the request is INVALID_ARGUMENT naming `sampling.repetition_penalty` (Generate has one
`sampling` per request, so the field has no item index); and in decoding, a row whose scores go NaN or
infinite anyway (weights, a constraint with no way out) is failed alone by `hf_decoding.RowSampler` /
`RowStopper` while its batch runs on, and a batch that raises is retried in halves (`batching.py`) so the
error reaches only the row that causes it.

    .venv/bin/python -m pytest tests/reliability/test_row06_sampling_isolation.py -q
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.common import errors
from services.common.presets import SamplingParams
from services.generator.client import GeneratorClient
from services.generator.core import resolve_sampling
from services.generator.engine import GenRow, encode

PROMPT = "### Human: Tell me about rivers and rivers and rivers.\n### Assistant:"
OVERFLOWING = {"repetition_penalty": 1e-45, "temperature": 1.0, "seed": 1}


@contextlib.contextmanager
def one_batch_window(generator_service):
    """Widen the running server's batching window so that two clients' requests share one batch (hf)."""
    worker = getattr(generator_service.generator.engine, "worker", None)
    if worker is None:  # vllm batches continuously: concurrent requests share its steps anyway
        yield
        return
    saved, worker.window_s = worker.window_s, 1.0
    try:
        yield
    finally:
        worker.window_s = saved


def test_an_overflowing_penalty_is_refused_and_the_other_client_in_the_batch_is_served(generator_service):
    def call(overrides):
        with GeneratorClient(generator_service.address, timeout=120) as client:
            try:
                return client.generate_all([PROMPT], max_tokens=8, **overrides)
            except errors.PolyglotError as exc:
                return exc

    with one_batch_window(generator_service), ThreadPoolExecutor(2) as pool:
        bad, good = pool.map(call, [OVERFLOWING, {"temperature": 1.0, "seed": 2}])
    assert isinstance(bad, errors.InvalidArgument), bad
    assert str(bad).startswith("sampling.repetition_penalty: "), bad  # the field, as the client receives it
    assert not isinstance(good, Exception), good
    assert good[0].error is None and good[0].finish_reason in ("stop", "length"), good[0]


@pytest.mark.parametrize(
    ("field", "value"),
    [("repetition_penalty", 1e-45), ("repetition_penalty", float("inf")), ("temperature", float("nan")),
     ("temperature", float("inf")), ("top_k", 2**31 - 1), ("frequency_penalty", float("nan"))],
)  # fmt: skip
def test_out_of_range_sampling_is_invalid_argument_naming_the_field(field, value):
    with pytest.raises(errors.InvalidArgument) as info:
        resolve_sampling("chat", {field: value})
    assert info.value.field == f"sampling.{field}"


def test_a_row_whose_scores_go_non_finite_fails_alone_in_its_batch(generator_service):
    """Past validation (as broken weights would), one row's NaN fails that row; its batch-mate completes."""
    if generator_service.backend != "hf":
        pytest.skip("the guard under test is the hf backend's decoding (vLLM samples with its own kernels)")
    engine = generator_service.generator.engine
    ids = tuple(encode(engine.tokenizer, PROMPT))
    sane = SamplingParams(temperature=1.0, max_tokens=8, seed=3)
    broken = SamplingParams.model_construct(**{**sane.model_dump(), "repetition_penalty": 1e-45})
    bad, good = engine.submit_generate([GenRow(ids, broken), GenRow(ids, sane)])  # one submission: one batch
    completion = good.result(120)
    assert completion.completion_tokens > 0 and completion.finish_reason in ("stop", "length")
    with pytest.raises(errors.PolyglotError) as info:
        bad.result(120)
    assert info.value.code == "INTERNAL" and "NaN or infinite" in info.value.message
