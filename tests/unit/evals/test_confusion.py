"""The language-confusion task: lcb's released prompts as items, lid's benchmark check as metrics, and the
scoring of `polyglot confusion` (per-source averaging, intervals, the matrix, record validation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.confusion import Record, Verdict, check_records, confusion_matrix, read_records, summarize
from flows.evals import TASKS
from flows.evals.confusion import UNSURE, lid_metrics
from flows.grading import check_lines
from flows.score import BadRecords
from services.common.errors import InvalidArgument
from services.common.presets import get_preset

FRENCH = "Le chat dort tranquillement sur le canapé du salon depuis ce matin."
ENGLISH = "The weather was lovely and we walked along the river for hours."
CHINESE = "我们今天下午在公园里散步，天气非常好，大家都很开心。"


@pytest.fixture(scope="module")
def lcb(shared_dir) -> Path:
    return shared_dir / "data" / "lcb"


@pytest.fixture(scope="module")
def lid(lcb):
    from services.lid.core import LanguageIdentifier

    return LanguageIdentifier(word_list=lcb / "words")


@pytest.fixture(scope="module")
def task():
    return TASKS.get("confusion")


def test_the_task_is_declared_once_with_the_benchmarks_decoding(task, lcb):
    assert (task.method, task.graded_by, task.metric_names()) == ("generate", "lid", ("lpr", "wpr"))
    assert task.variant_names() == ("monolingual", "crosslingual")
    sampling = task.options(languages=["fr"], data_dir=lcb).sampling
    assert sampling == get_preset("lcb")
    assert (sampling.top_p, sampling.temperature, sampling.max_tokens) == (0.75, 0.3, 100)


def test_items_are_drawn_per_source_and_setting_from_the_released_test_sets(task, lcb):
    options = task.options(languages=["fr", "en"], data_dir=lcb, sample_size=6)  # fr: 3 sources in each setting
    items = task.build_items(options, "fr", seed=42)
    by_source = {}
    for item in items:
        by_source.setdefault((item.mode, item.source), []).append(item)
    monolingual = {p.name for p in (lcb / "test_sets" / "monolingual").iterdir() if (p / "fr.csv").is_file()}
    crosslingual = {p.name for p in (lcb / "test_sets" / "crosslingual").iterdir() if (p / "fr.csv").is_file()}
    expected = {("monolingual", f"lcb:{s}") for s in monolingual} | {("crosslingual", f"lcb:{s}") for s in crosslingual}
    assert set(by_source) == expected and all(len(group) == 2 for group in by_source.values())
    assert len({item.id for item in items}) == len(items)
    assert all(item.prompt.startswith("### Human: ") and item.prompt.endswith("### Assistant:") for item in items)
    assert items == task.build_items(options, "fr", seed=42)  # seeded
    english = task.build_items(options, "en", seed=42)  # no cross-lingual set asks for English
    assert len(english) == 6 and {item.mode for item in english} == {"monolingual"}
    uneven = task.build_items(task.options(languages=["fr"], data_dir=lcb, sample_size=4), "fr", seed=42)
    per_source = {}
    for item in uneven:
        per_source[(item.mode, item.source)] = per_source.get((item.mode, item.source), 0) + 1
    assert sorted(per_source.values()) == [1, 1, 1, 1, 2, 2]  # 4 per setting: one source gets the extra


def test_a_language_without_prompts_in_the_chosen_sources_is_refused_naming_the_option(task, lcb):
    options = task.options(languages=["de"], data_dir=lcb, settings=["monolingual"], sources=["dolly"])
    with pytest.raises(InvalidArgument) as caught:
        task.build_items(options, "de", seed=0)
    assert caught.value.field == "evaluation.tasks.confusion.languages"


def test_metrics_follow_the_benchmarks_line_and_word_rules(lid):
    checks = check_lines(
        lid,
        [FRENCH, f"{FRENCH}\n{ENGLISH}", "trop court", CHINESE, f"{CHINESE} computer science"],
        ["fr", "fr", "fr", "zh", "zh"],
    )
    assert lid_metrics(checks[0]) == {"lpr": 1.0}  # WPR is not defined for French
    assert lid_metrics(checks[1]) == {"lpr": 0.0}
    assert lid_metrics(checks[2]) == {}  # no line of 5+ tokens: the benchmark skips the reply
    assert lid_metrics(checks[3]) == {"lpr": 1.0, "wpr": 1.0}
    assert lid_metrics(checks[4]) == {"lpr": 1.0, "wpr": 0.0}  # English words in a Chinese reply


def _verdict(language: str, source: str, line_pass: bool | None, drifted: tuple[tuple[str, float], ...] = ()):
    lines = [{"text": "x", "language": code, "raw_label": code, "probability": p, "passed": False}
             for code, p in drifted]  # fmt: skip
    return Verdict(Record(1, "i", language, "reply", source=source), {"line_pass": line_pass, "word_pass": None,
                                                                      "lines": lines})  # fmt: skip


def test_scores_average_per_source_then_per_language_with_an_interval_inside_the_range():
    verdicts = [_verdict("fr", "a", True)] * 9 + [_verdict("fr", "a", False, (("en", 0.9),))]  # a: 0.9
    verdicts += [_verdict("fr", "b", False, (("fr", 0.2),))] * 3 + [_verdict("fr", "b", True)]  # b: 0.25
    verdicts += [_verdict("fr", "b", None)]  # skipped: in no mean
    (row,) = summarize(verdicts, n_resamples=200)
    assert row.lpr.mean == pytest.approx((0.9 + 0.25) / 2)  # not the pooled 10 / 14
    assert 0 <= row.lpr.ci_low <= row.lpr.mean <= row.lpr.ci_high <= 1
    assert (row.records, row.skipped, row.lpr.n, row.wpr) == (15, 1, 14, None)
    assert summarize(verdicts, n_resamples=200) == [row]  # reproducible
    assert confusion_matrix(verdicts) == {"fr": {"en": 1, UNSURE: 3}}


def test_in_process_check_keeps_every_record_in_order(lid):
    records = [Record(n, f"r{n}", lang, text) for n, (text, lang) in enumerate(
        [(FRENCH, "fr"), ("", "fr"), (f"{ENGLISH}\n{FRENCH}", "fr"), (CHINESE, "zh")], 1)]  # fmt: skip
    verdicts = check_records(records, lid)
    assert [v.record for v in verdicts] == records
    assert [v.lpr for v in verdicts] == [1.0, None, 0.0, 1.0]
    assert confusion_matrix(verdicts)["fr"] == {"en": 1}


def test_records_read_from_jsonl_and_csv_and_every_malformed_one_is_named(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(f"prompt,response,language,source\nq,{FRENCH},French,okapi\nq2,\"\",kor,native\n", "utf-8")
    assert [(r.line, r.language, r.source) for r in read_records(good)] == [(2, "fr", "okapi"), (3, "ko", "native")]
    bad = tmp_path / "bad.jsonl"
    lines = [{"reply": FRENCH, "language": "fr"}, {"language": "fr"}, {"reply": 3, "language": "fr"},
             {"reply": "x", "language": "klingon?"}, [1]]  # fmt: skip
    bad.write_text("\n".join(json.dumps(x) for x in lines) + "\n{oops\n", "utf-8")
    with pytest.raises(BadRecords) as caught:
        read_records(bad)
    assert [(line, name) for line, name, _ in caught.value.problems] == [
        (2, "reply"), (3, "reply"), (4, "language"), (5, "(record)"), (6, "(record)"),
    ]  # fmt: skip
    unnamed = tmp_path / "unnamed.jsonl"
    unnamed.write_text('{"reply": "a"}\n', "utf-8")
    assert read_records(unnamed, "fr")[0].language == "fr"  # the default fills a record that names none
