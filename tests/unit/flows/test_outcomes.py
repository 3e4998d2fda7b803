"""Outcome accounting: every item's outcome on its record, counted per cell, and the error-share limit."""

from __future__ import annotations

import json

import pytest

from flows.aggregate import CellOutcomes, aggregate, check_error_share, outcome_counts
from flows.report import render_report
from flows.results import ItemResult, Outcome, results_from_jsonl, results_to_jsonl
from services.common.errors import FailedPrecondition, InvalidArgument


def chat(
    item: str, outcome: Outcome = Outcome.OK, *, mix: str = "mono", language: str = "es", seed: int = 0, **metrics
):
    metrics = metrics or ({"lang_match": 1.0} if outcome is not Outcome.REFUSED else {})
    return ItemResult("s", "m", mix, "chat", "", language, seed, item, metrics, outcome)


def test_old_shards_without_an_outcome_load_as_ok_and_new_ones_round_trip():
    old = '{"study":"s","base_model":"m","mix":"mono","task":"chat","language":"es","seed":0,"item_id":"a",' \
          '"metrics":{"helpfulness":3}}\n'  # fmt: skip
    (record,) = results_from_jsonl(old)
    assert record.outcome is Outcome.OK
    records = [chat("a", Outcome.UNPARSABLE), chat("b", Outcome.REFUSED)]
    data = results_to_jsonl(records)
    assert results_from_jsonl(data) == records and b'"outcome":"refused"' in data


def test_an_item_without_metrics_needs_an_outcome_that_says_why():
    assert chat("a", Outcome.ERROR, lang_match=1.0).metrics == {"lang_match": 1.0}  # judge failed, lid ran
    assert chat("b", Outcome.REFUSED).metrics == {}
    with pytest.raises(InvalidArgument) as no_metric:
        ItemResult("s", "m", "mono", "chat", "", "es", 0, "c", {}, Outcome.OK)
    assert no_metric.value.field == "metrics"
    with pytest.raises(InvalidArgument) as unknown:
        ItemResult("s", "m", "mono", "chat", "", "es", 0, "c", {"lang_match": 1}, "lost")
    assert unknown.value.field == "outcome"


def test_counts_cover_every_item_and_the_mean_only_graded_ones():
    records = [
        chat("a", helpfulness=4.0, lang_match=1.0),
        chat("b", Outcome.LANGUAGE_MISMATCH, helpfulness=1.0, lang_match=0.0),  # the gate's 1 is a grade
        chat("c", Outcome.UNPARSABLE, lang_match=1.0),
        chat("d", Outcome.ERROR, lang_match=1.0),
        chat("e", Outcome.REFUSED),
        chat("a", seed=1, helpfulness=6.0, lang_match=1.0),
    ]
    assert outcome_counts(records) == {
        ("m", "mono", "chat", "", "es"): {"ok": 2, "language_mismatch": 1, "unparsable": 1, "error": 1, "refused": 1}
    }
    result = aggregate(records)
    rows = {r.metric: r for r in result.rows}
    assert rows["helpfulness"].mean == pytest.approx((4 + 1 + 6) / 3) and rows["helpfulness"].n_obs == 3
    assert rows["lang_match"].n_obs == 5
    assert rows["helpfulness"].outcomes == rows["lang_match"].outcomes == result.outcomes[0].counts


def test_the_error_share_is_per_task_and_names_the_share_and_cells():
    cells = [
        CellOutcomes("m", "mono", "chat", "", "es", {"ok": 97, "error": 3}),
        CellOutcomes("m", "multi-2", "chat", "", "es", {"ok": 100}),
        CellOutcomes("m", "mono", "xnli", "", "es", {"ok": 10_000}),  # does not dilute chat's errors
    ]
    check_error_share(cells, 0.015)  # 3 of 200 is 1.5%: at the limit passes
    with pytest.raises(FailedPrecondition) as failed:
        check_error_share(cells, 0.01)
    message = str(failed.value)
    assert "chat: 3 of 200 items (1.5%) ended in error, in m/mono/chat/es (3 of 100)" in message
    assert "xnli" not in message and "1.0%" in message and failed.value.field == "evaluation.max_error_share"
    check_error_share([CellOutcomes("m", "mono", "chat", "", "es", {"error": 1})], 1.0)  # 1.0 never fails


def test_a_cell_with_no_metric_left_still_shows_its_counts(smoke_cfg, tmp_path):
    records = [chat("a", helpfulness=5.0), chat("b", Outcome.ERROR), chat("c", Outcome.REFUSED, mix="multi-2")]
    result = aggregate(records)
    paths = render_report(
        smoke_cfg, result.rows, result.tests, [], {}, {}, tmp_path, versions=[], outcomes=result.outcomes
    )
    md = paths["md"].read_text()
    assert "| 5.00 [5.00, 5.00] · n=1 · 1 error | – † · n=0 · 1 refused |" in md  # es is in Multi-2's data
    json.dumps(result.to_json())
