"""Aggregation on synthetic results whose answers are known: means, intervals, spreads, paired tests."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from flows.aggregate import Aggregate, aggregate, cluster_bootstrap, holm, paired_tests, summarize
from flows.config import ReportConfig
from flows.results import ItemResult
from tests.unit.flows.conftest import make_records


def only(rows, **match):
    found = [r for r in rows if all(getattr(r, k) == v for k, v in match.items())]
    assert len(found) == 1, found
    return found[0]


def test_mean_is_pooled_over_items_and_seeds():
    # Item i, seed s has value (i + s) / 10: mean over 4 items × 2 seeds = (mean i + mean s) / 10.
    records = make_records(
        mixes=("mono",), languages=("en",), seeds=(0, 2), n_items=4, value=lambda m, lang, i, s, r: (i + s) / 10
    )
    row = only(summarize(records, n_resamples=200))
    assert row.mean == pytest.approx((1.5 + 1.0) / 10)
    assert (row.n_items, row.n_seeds, row.n_obs) == (4, 2, 8)
    assert row.seeds == [0, 2] and row.seed_means == pytest.approx([0.15, 0.35])
    assert (row.seed_min, row.seed_max) == pytest.approx((0.15, 0.35))
    assert row.seed_std == pytest.approx(np.std([0.15, 0.35], ddof=1))
    assert row.ci_low <= row.mean <= row.ci_high


def test_missing_seeds_weight_each_observation_once():
    records = make_records(
        mixes=("mono",), languages=("en",), seeds=(0, 42), n_items=3, value=lambda m, lang, i, s, r: float(i == 0)
    )
    records = [r for r in records if not (r.item_id == "en-0" and r.seed == 42)]  # item 0 has one seed
    row = only(summarize(records, n_resamples=200))
    assert row.mean == pytest.approx(1 / 5) and row.n_obs == 5 and row.n_items == 3


def test_single_seed_has_no_std_and_single_item_no_interval():
    records = make_records(mixes=("mono",), languages=("en",), seeds=(0,), n_items=1, value=lambda *a: 0.5)
    row = only(summarize(records))
    assert row.seed_std is None and row.ci_low == row.ci_high == row.mean == 0.5


def test_interval_covers_the_truth_at_about_the_nominal_rate():
    true_p = 0.6
    covered = 0
    for replicate in range(60):
        records = make_records(
            mixes=("mono",),
            languages=("en",),
            n_items=150,
            rng_seed=replicate,
            value=lambda m, lang, i, s, r: float(r.random() < true_p),
        )
        row = only(summarize(records, n_resamples=400, seed=replicate))
        covered += row.ci_low <= true_p <= row.ci_high
    assert covered >= 52  # 95% nominal; 52/60 leaves room for Monte Carlo noise


def test_output_is_deterministic_and_independent_of_order_and_other_cells():
    records = make_records(mixes=("mono", "multi-2"), languages=("en", "es", "de"))
    first = aggregate(records, ReportConfig(bootstrap_samples=300))
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    assert aggregate(shuffled, ReportConfig(bootstrap_samples=300)) == first
    # One cell alone gives the same interval as inside the whole table: RNG is seeded per cell.
    alone = summarize([r for r in records if r.mix == "mono" and r.language == "es"], n_resamples=300)
    assert alone[0] == only(first.rows, mix="mono", language="es")
    assert json.loads(json.dumps(first.to_json())) == first.to_json()
    assert Aggregate.from_json(json.loads(json.dumps(first.to_json()))) == first


def test_rows_follow_figure_order_and_mix_order():
    records = make_records(
        mixes=("multi-3", "full", "mono", "multi-2-mt", "multi-2"), languages=("hi", "es", "en", "ca")
    )
    rows = summarize(records, n_resamples=100)
    assert [r.language for r in rows[::5]] == ["en", "es", "ca", "hi"]
    assert [r.mix for r in rows[:5]] == ["mono", "multi-2", "multi-2-mt", "multi-3", "full"]


def test_cluster_bootstrap_keeps_an_items_seeds_together():
    # Three identical seeds add no information: the interval must equal the one-seed interval,
    # not shrink by sqrt(3) as resampling seeds independently would make it.
    one = make_records(
        mixes=("mono",), languages=("en",), seeds=(0,), n_items=80, value=lambda m, lang, i, s, r: float(i % 3 == 0)
    )
    three = make_records(
        mixes=("mono",),
        languages=("en",),
        seeds=(0, 1, 2),
        n_items=80,
        value=lambda m, lang, i, s, r: float(i % 3 == 0),
    )
    a, b = only(summarize(one, n_resamples=500)), only(summarize(three, n_resamples=500))
    assert (a.ci_low, a.ci_high) == pytest.approx((b.ci_low, b.ci_high))
    values = np.array([float(i % 3 == 0) for i in range(80) for _ in range(3)])
    naive = np.random.default_rng(0).choice(values, size=(500, values.size)).mean(axis=1)
    assert np.quantile(naive, 0.975) - np.quantile(naive, 0.025) < 0.7 * (b.ci_high - b.ci_low)


def test_cluster_bootstrap_draws_whole_items():
    sums, counts = np.array([3.0, 0.0]), np.array([3.0, 3.0])  # item 0: all ones, item 1: all zeros
    replicates = cluster_bootstrap(sums, counts, 400, np.random.default_rng(0))
    assert set(np.round(replicates, 6)) <= {0.0, 0.5, 1.0}  # never a mixture within an item


def test_paired_test_detects_a_planted_difference():
    def value(mix, lang, item, seed, rng):
        base = (item % 10) / 10  # item difficulty shared by both mixes: pairing removes it
        return float(np.clip(base + (0.08 if mix == "multi-2" else 0.0) + rng.normal(0, 0.05), 0, 1))

    records = make_records(mixes=("mono", "multi-2"), languages=("es",), n_items=60, value=value)
    test = only(paired_tests(records, n_resamples=1000))
    assert (test.mix, test.reference, test.n_items, test.n_pairs) == ("multi-2", "mono", 60, 180)
    assert test.mean_diff == pytest.approx(0.08, abs=0.02)
    assert test.ci_low > 0 and test.p_value < 0.01


def test_paired_test_does_not_flag_a_null_difference():
    def value(mix, lang, item, seed, rng):
        return float(np.clip((item % 10) / 10 + rng.normal(0, 0.05), 0, 1))  # same distribution for both

    false_alarms = 0
    for replicate in range(30):
        records = make_records(
            mixes=("mono", "multi-2"), languages=("es",), n_items=40, value=value, rng_seed=replicate
        )
        test = only(paired_tests(records, n_resamples=400, seed=replicate))
        false_alarms += test.p_value < 0.05
        assert 0 < test.p_value <= 1
    assert false_alarms <= 5  # nominal 5% of 30 = 1.5


def test_exactly_equal_mixes_give_p_one():
    records = make_records(mixes=("mono", "multi-3"), languages=("de",), value=lambda m, lang, i, s, r: i % 2)
    test = only(paired_tests(records, n_resamples=200))
    assert test.mean_diff == 0 and test.p_value == 1.0 and test.ci_low == test.ci_high == 0


def test_pairs_are_matched_by_item_and_seed():
    records = make_records(
        mixes=("mono", "multi-2"), languages=("en",), n_items=10, value=lambda m, lang, i, s, r: float(m == "multi-2")
    )
    # Mono lacks seed 723 everywhere and item en-0 entirely: those observations have no pair.
    records = [r for r in records if not (r.mix == "mono" and (r.seed == 723 or r.item_id == "en-0"))]
    test = only(paired_tests(records, n_resamples=200))
    assert (test.n_items, test.n_pairs, test.mean_diff) == (9, 18, 1.0)


def test_every_mix_is_tested_against_mono_and_holm_adjusts_per_family():
    records = make_records(mixes=("mono", "multi-2", "multi-3", "full"), languages=("en", "es"))
    tests = paired_tests(records, n_resamples=200)
    assert {(t.mix, t.language) for t in tests} == {
        (m, lang) for m in ("multi-2", "multi-3", "full") for lang in ("en", "es")
    }
    assert all(t.p_holm >= t.p_value for t in tests)
    assert paired_tests([r for r in records if r.mix != "mono"]) == []  # no reference, no test


def test_holm_matches_hand_computation():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([]) == []


def test_report_section_sets_confidence_and_resamples():
    records = make_records(mixes=("mono",), languages=("en",), n_items=100)
    wide = only(aggregate(records, ReportConfig(confidence=0.99, bootstrap_samples=500)).rows)
    narrow = only(aggregate(records, ReportConfig(confidence=0.8, bootstrap_samples=500)).rows)
    assert narrow.ci_high - narrow.ci_low < wide.ci_high - wide.ci_low
    assert (wide.confidence, narrow.confidence) == (0.99, 0.8)


def test_chat_records_give_one_row_per_metric_and_xquad_keeps_variants():
    chat = [
        ItemResult(
            "s",
            "m",
            "mono",
            "chat",
            "",
            "de",
            s,
            f"p{i}",
            {"helpfulness": 1 + i % 6, "lang_match": i % 2, "tgt_lang": 1, "line_pass_rate": 0.5},
        )
        for i in range(6)
        for s in (0, 42)
    ]
    xquad = [
        ItemResult("s", "m", "mono", "xquad", v, "de", 0, f"q{i}", {"em": 1, "f1": 1})
        for v in ("en:xx", "xx:xx")
        for i in range(3)
    ]
    rows = summarize(chat + xquad, n_resamples=100)
    assert [(r.task, r.variant, r.metric) for r in rows] == [
        ("chat", "", "helpfulness"),
        ("chat", "", "lang_match"),
        ("chat", "", "tgt_lang"),
        ("chat", "", "line_pass_rate"),
        ("xquad", "en:xx", "em"),
        ("xquad", "en:xx", "f1"),
        ("xquad", "xx:xx", "em"),
        ("xquad", "xx:xx", "f1"),
    ]
    assert rows[0].mean == pytest.approx(3.5)
