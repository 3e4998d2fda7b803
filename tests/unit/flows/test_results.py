"""The per-item result record: validation, jsonl round trips, loading shards."""

from __future__ import annotations

import pickle

import pytest

from flows.results import ItemResult, load_results, read_jsonl, results_from_jsonl, results_to_jsonl, write_jsonl
from services.common.errors import InvalidArgument


def record(**overrides) -> ItemResult:
    fields = dict(
        study="s",
        base_model="llama2-7b",
        mix="multi-2",
        task="chat",
        variant="",
        language="de",
        seed=42,
        item_id="alpaca-17",
        metrics={"helpfulness": 4, "lang_match": 1, "tgt_lang": 1, "line_pass_rate": 0.75},
    )
    return ItemResult(**{**fields, **overrides})


def test_jsonl_round_trip_is_exact_and_byte_stable():
    records = [record(), record(task="xquad", variant="xx:xx", item_id="q1", metrics={"em": 0, "f1": 0.4})]
    data = results_to_jsonl(records)
    assert results_from_jsonl(data) == records
    assert results_to_jsonl(results_from_jsonl(data)) == data
    assert data.count(b"\n") == 2


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"task": "mmlu"}, "task"),
        ({"task": "xquad", "metrics": {"em": 1.0}}, "variant"),  # XQuAD needs en:xx or xx:xx
        ({"variant": "en:xx"}, "variant"),  # only XQuAD has variants
        ({"language": "xx"}, "language"),
        ({"seed": -1}, "seed"),
        ({"item_id": ""}, "item_id"),
        ({"metrics": {}}, "metrics"),
        ({"metrics": {"accuracy": 1.0}}, "metrics.accuracy"),  # not a chat metric
        ({"metrics": {"helpfulness": 7}}, "metrics.helpfulness"),  # the judge's scale is 1-6
        ({"metrics": {"helpfulness": 0}}, "metrics.helpfulness"),
        ({"metrics": {"tgt_lang": float("nan")}}, "metrics.tgt_lang"),
    ],
)
def test_invalid_records_name_the_field(overrides, field):
    with pytest.raises(InvalidArgument) as info:
        record(**overrides)
    assert info.value.field == field


def test_metrics_are_copied_and_ordered_as_the_task_lists_them():
    metrics = {"tgt_lang": 1, "helpfulness": 5}
    r = record(metrics=metrics)
    metrics["helpfulness"] = 1
    assert list(r.metrics) == ["helpfulness", "tgt_lang"] and r.metrics["helpfulness"] == 5.0


def test_records_pickle_for_prefect_and_hash_by_key():
    r = record()
    assert pickle.loads(pickle.dumps(r)) == r
    assert len({r, record()}) == 1


def test_shards_write_atomically_and_load_from_a_directory(tmp_path):
    a = [record(seed=s) for s in (0, 42)]
    b = [record(seed=723)]
    write_jsonl(tmp_path / "shards" / "a.jsonl", a)
    write_jsonl(tmp_path / "shards" / "sub" / "b.jsonl", b)
    assert sorted(p.name for p in (tmp_path / "shards").rglob("*")) == ["a.jsonl", "b.jsonl", "sub"]
    assert read_jsonl(tmp_path / "shards" / "a.jsonl") == a
    loaded = load_results([tmp_path / "shards", *b])  # the same record twice is kept once
    assert sorted(r.seed for r in loaded) == [0, 42, 723]


def test_shared_shards_from_another_study_deduplicate_but_conflicts_raise():
    assert len(load_results([record(study="a"), record(study="b")])) == 1  # study is provenance
    with pytest.raises(InvalidArgument, match="conflicting"):
        load_results([record(), record(metrics={"helpfulness": 1})])


def test_bad_jsonl_names_source_and_line():
    good = results_to_jsonl([record()]).decode()
    with pytest.raises(InvalidArgument, match=r"shard\.jsonl:2: .*unknown task"):
        results_from_jsonl(good + good.replace('"chat"', '"nope"'), source="shard.jsonl")
    with pytest.raises(InvalidArgument, match=r"<jsonl>:1: invalid JSON"):
        results_from_jsonl("{not json\n")
