"""Cost control before anything is sent: allowed models, caps, the run budget's reservations."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument, ResourceExhausted
from services.judge import limits
from services.judge.settings import JudgeSettings, Price
from services.judge.usage import UsageBook


def test_only_the_default_model_unless_the_server_allows_more():
    settings = JudgeSettings(model="gpt-3.5-turbo")
    assert limits.check_model("gpt-3.5-turbo", settings, "judge.model") == "gpt-3.5-turbo"
    with pytest.raises(InvalidArgument, match="allowed: gpt-3.5-turbo") as info:
        limits.check_model("gpt-4-turbo", settings, "judge.model")
    assert info.value.field == "judge.model"
    wider = JudgeSettings(model="gpt-3.5-turbo", allowed_models=["gpt-4o-mini*", "tiny-llama"])
    assert all(limits.allowed(m, wider) for m in ("gpt-3.5-turbo", "gpt-4o-mini-2024-07-18", "tiny-llama"))
    assert not limits.allowed("gpt-4o", wider)


def test_token_estimate_errs_high_for_english_and_scripts():
    assert limits.estimate_tokens(["word " * 300]) >= 300  # about 300 tokens for a GPT tokenizer
    assert limits.estimate_tokens(["你好" * 100]) >= 200  # CJK: about a token per character
    with pytest.raises(InvalidArgument, match=r"over max_prompt_tokens \(10\)"):
        limits.check_prompt("x" * 100, JudgeSettings(max_prompt_tokens=10), "items[0].response")


def test_reservations_hold_the_budget_and_a_reply_settles_its_own():
    book = UsageBook({"m": Price(input=1.0, output=1.0)}, budget_usd=1.0, budgets={"big": 10.0})
    meter = book.meter("run")
    with meter.reserve("m", 400_000, 400_000):  # $0.80 in flight
        budget = r"run 'run' is at its judge budget budget_usd of \$1\.00"
        with pytest.raises(ResourceExhausted, match=budget), meter.reserve("m", 100_000, 200_000):
            pass
        meter.tokens("m", 300_000, 100_000)  # the reply cost $0.40
    with meter.reserve("m", 250_000, 250_000):  # $0.40 spent + $0.50 held: under the limit
        pass
    big = book.meter("big")
    with (
        big.reserve("m", 1_000_000, 1_000_000),  # $2 under its own budget of $10
        pytest.raises(ResourceExhausted, match=r"budgets\['big'\] of \$10\.00") as info,
        big.reserve("m", 5_000_000, 5_000_000),
    ):
        pass
    assert info.value.field == "run_id"
    assert book.run("run").cost_usd == pytest.approx(0.4)
