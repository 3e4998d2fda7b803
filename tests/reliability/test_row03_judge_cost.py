"""Row 3: the caller chose the judge model with no limits; one Grade call was billed $120 on a fake endpoint
(gpt-4-turbo, 12 M tokens). Reproduced before the fix: 3 items with `judge.model=gpt-4-turbo` against the
scripted endpoint billing 4 M tokens each were all sent and cost $180, answered OK.

Remedy (services/judge/limits.py, usage.py): the server owns the models a request may name (INVALID_ARGUMENT
naming `judge.model`, nothing sent), caps the items per call and each prompt's estimated size (the reply's
is `max_tokens`, which no caller sets), and holds each request's worst case against the run's budget in USD:
a request that could pass it is not sent and the call fails RESOURCE_EXHAUSTED naming the budget and the
run. The spend is persisted, so a restarted judge stops the run too.
"""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument, ResourceExhausted
from services.judge.client import JudgeClient
from services.judge.records import GradeItem
from tests.fixtures.judge import Reply, running_judge

BUDGET_USD = 0.1


def items(n: int, start: int = 0) -> list[GradeItem]:
    return [GradeItem(f"Question {i}?", f"An English answer, number {i}.", "en", response_language="en")
            for i in range(start, start + n)]  # fmt: skip


def test_a_model_the_server_does_not_allow_is_refused_before_any_request(openai_server, judge_settings_factory):
    with running_judge(judge_settings_factory(openai_server.base_url)) as address, JudgeClient(address) as judge:
        with pytest.raises(InvalidArgument, match=r"^judge\.model: 'gpt-4-turbo' is not a model this judge serves"):
            judge.grade(items(3), model="gpt-4-turbo")
        with pytest.raises(InvalidArgument, match=r"^model\.model: "):
            judge.translate(["Hello"], target_language="de", model="gpt-4-turbo")
        assert openai_server.count == 0
        assert judge.grade(items(1), model="gpt-3.5-turbo").records[0].error is None  # the server's own model


def test_items_per_call_and_prompt_size_are_capped_before_any_request(openai_server, judge_settings_factory):
    settings = judge_settings_factory(openai_server.base_url, max_items_per_call=4, max_prompt_tokens=2000)
    with running_judge(settings) as address, JudgeClient(address) as judge:
        with pytest.raises(InvalidArgument, match=r"^items: 5 in one call; .* at most 4"):
            judge.grade(items(5))
        long = GradeItem("Summarise.", "word " * 3000, "en", response_language="en")
        with pytest.raises(InvalidArgument, match=r"^items\[1\]\.response: .* over max_prompt_tokens \(2000\)"):
            judge.grade([*items(1), long])
    assert openai_server.count == 0


def test_a_run_budget_is_a_hard_stop_that_survives_a_restart(openai_server, judge_settings_factory):
    # Every reply uses the whole max_tokens, as the most expensive honest reply would.
    openai_server.default = lambda request: Reply({"reasoning": "fine", "score": 4}, completion_tokens=1024)
    settings = judge_settings_factory(
        openai_server.base_url, allowed_models=["gpt-4-turbo"], budgets={"red-team": BUDGET_USD}
    )
    with running_judge(settings) as address, JudgeClient(address) as judge:
        with pytest.raises(ResourceExhausted, match=r"run 'red-team' is at its judge budget budgets\['red-team'\]"):
            judge.grade(items(10), model="gpt-4-turbo", run_id="red-team")
        spent = judge.usage("red-team")
    assert 0 < openai_server.count < 10 and spent.requests == openai_server.count
    assert 0 < spent.cost_usd <= BUDGET_USD

    with running_judge(settings) as address, JudgeClient(address) as judge:  # a restarted judge, same store
        with pytest.raises(ResourceExhausted, match="budgets"):
            judge.grade(items(5, start=10), model="gpt-4-turbo", run_id="red-team")
        assert judge.usage("red-team").cost_usd == pytest.approx(spent.cost_usd)
    assert openai_server.count == spent.requests  # nothing more was bought


def test_made_up_run_ids_cannot_spend_past_the_service_total_which_survives_a_restart(
    openai_server, judge_settings_factory
):
    openai_server.default = lambda request: Reply({"reasoning": "fine", "score": 4}, completion_tokens=1024)
    settings = judge_settings_factory(
        openai_server.base_url, allowed_models=["gpt-4-turbo"], budget_usd=BUDGET_USD, total_budget_usd=2 * BUDGET_USD
    )
    with running_judge(settings) as address, JudgeClient(address) as judge:
        spent = 0.0
        for n in range(10):  # each new run id has a fresh per-run budget; the service's total still holds
            try:
                judge.grade(items(2, start=2 * n), model="gpt-4-turbo", run_id=f"made-up-{n}")
            except ResourceExhausted as exc:
                if "total budget" in str(exc):
                    break
            spent = sum(judge.usage(f"made-up-{k}").cost_usd for k in range(n + 1))
        else:
            pytest.fail("ten made-up runs were never stopped by total_budget_usd")
    assert 0 < spent <= 2 * BUDGET_USD
    bought = openai_server.count

    with (
        running_judge(settings) as address,  # restarted: the total is persisted
        JudgeClient(address) as judge,
        pytest.raises(ResourceExhausted, match="total budget total_budget_usd"),
    ):
        judge.grade(items(1, start=100), model="gpt-4-turbo", run_id="yet-another")
    assert openai_server.count == bought  # nothing more was bought

