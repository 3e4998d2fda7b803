"""The token and cost account: priced by model prefix, per call and per run, persisted in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.errors import InvalidArgument, NotFound
from services.common.store import open_store
from services.judge.settings import Price, default_prices
from services.judge.usage import PriceTable, Usage, UsageBook, check_run_id


def test_longest_prefix_prices_a_dated_model():
    table = PriceTable({"gpt-4o": Price(input=2.5, output=10), "gpt-4o-mini": Price(input=0.15, output=0.6)})
    assert table.cost("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert table.cost("gpt-4o-2024-08-06", 1_000_000, 0) == pytest.approx(2.5)
    assert table.cost("my-local-llama", 10**9, 10**9) == 0.0


def test_packaged_price_table_loads():
    prices = default_prices()
    assert prices["gpt-3.5-turbo"].input > 0 and prices["gpt-3.5-turbo"].output > 0


async def test_meter_counts_on_call_and_run_and_persists(tmp_path: Path):
    store = open_store(tmp_path.as_uri())
    book = UsageBook({"m": Price(input=1.0, output=2.0)}, store)
    call = Usage()
    meter = book.meter("run-1", call)
    meter.sent()
    meter.tokens("m", 1000, 500)
    meter.sent()  # a failed attempt: a request, no tokens
    meter.cached()
    assert call == Usage(requests=2, prompt_tokens=1000, completion_tokens=500, cached=1, cost_usd=0.002)
    later = book.meter("run-1")
    later.sent()
    later.tokens("m", 1000, 0)
    await book.save("run-1")

    reopened = UsageBook({}, store)  # another process, later
    usage = await reopened.get("run-1")
    assert usage.requests == 3 and usage.prompt_tokens == 2000 and usage.cost_usd == pytest.approx(0.003)
    with pytest.raises(NotFound) as info:
        await reopened.get("never-ran")
    assert info.value.field == "run_id"


@pytest.mark.parametrize("run_id", ["../x", "a/b", ".hidden", "x" * 200, "spaces here"])
def test_run_ids_that_cannot_be_keys_are_rejected(run_id: str):
    with pytest.raises(InvalidArgument) as info:
        check_run_id(run_id)
    assert info.value.field == "run_id"


def test_empty_run_id_is_the_default_run():
    assert check_run_id("") == "default"
    assert check_run_id("study1.chat-de_0") == "study1.chat-de_0"
