"""Progress events, their state, the CLI's view (lines off a terminal, bars on one) and the stdout contract:
paths a line each, or one JSON object; the summary and progress on stderr, none of it when quiet."""

from __future__ import annotations

import json
import logging
import os

import pytest
from rich.console import Console

from flows import progress
from flows.progress import (
    DataProgress,
    EvaluationPlanned,
    ShardDone,
    ShardFailed,
    ShardInfo,
    TrainingDone,
    TrainingProgress,
    TrainingStarted,
)
from flows.progress_view import ProgressView, results_of, summary_rows


def shard(key: str, task: str = "chat", language: str = "es", items: int = 4) -> ShardInfo:
    services = ("generator", "lid", "judge") if task == "chat" else ("generator",)
    return ShardInfo(key, "tiny/mono", task, language, 0, items, services)


PLAN = EvaluationPlanned(
    (shard("a"), shard("b", language="ru"), shard("c", task="xnli", items=10)), stored=frozenset({"c"})
)


def recorded() -> Console:
    return Console(record=True, width=160, file=open(os.devnull, "w"))  # noqa: SIM115


def test_the_tracker_counts_shards_items_per_service_and_a_retry_that_passed():
    tracker = progress.Tracker()
    tracker.apply(TrainingProgress("tiny/mono", 0, 100, 0.0, 0.0, 0.0))  # the trainer's start report
    assert (tracker.jobs["tiny/mono"].loss, tracker.jobs["tiny/mono"].eta_seconds) == (None, None)
    for event in (PLAN, ShardFailed("a", "UNAVAILABLE"), ShardDone("a", 4, 1, 2.0), ShardFailed("b", "boom")):
        tracker.apply(event)
    assert tracker.shard_counts() == (2, 1, 3)  # c stored before, a done after a failed try, b failed
    # The stored xnli shard is not work of this run: only chat's 8 items go through lid and the judge.
    assert tracker.service_items() == {"generator": (4, 8), "lid": (4, 8), "judge": (4, 8)}
    cells = tracker.cells()
    assert (cells["chat", "tiny/mono"].done, cells["chat", "tiny/mono"].failed) == (1, 1)
    assert (cells["chat", "tiny/mono"].errors, cells["chat", "tiny/mono"].seconds) == (1, 2.0)
    assert (cells["xnli", "tiny/mono"].done, cells["xnli", "tiny/mono"].planned) == (1, 1)


def test_off_a_terminal_each_shard_prints_its_n_of_m_and_training_is_rate_limited():
    console = recorded()
    view = ProgressView(console, live=False)
    view(TrainingStarted("tiny/mono", "job-1", 100))
    view(TrainingProgress("tiny/mono", 0, 100, 0.0, 0.0, 0.0))  # the trainer's start report: no line
    for step in (10, 20, 100):  # 20 comes within LINE_EVERY_S of 10: no line; the last step always has one
        view(TrainingProgress("tiny/mono", step, 100, 2.5 - step / 100, 1234.0, 90.0))
    view(TrainingDone("tiny/mono", "SUCCEEDED", 100, 1.5))
    view(PLAN)
    view(ShardDone("a", 4, 1, 3.0))
    view(ShardFailed("b", "UNAVAILABLE: judge down\ntraceback"))
    view(DataProgress("multi-2", 160, 160, "built"))
    lines = console.export_text().splitlines()
    assert lines == [
        "train tiny/mono: job job-1, 100 steps",
        "train tiny/mono: step 10/100 · loss 2.4 · 1,234 tok/s · ETA 1m30s",
        "train tiny/mono: step 100/100 · loss 1.5 · 1,234 tok/s · ETA 1m30s",
        "train tiny/mono: succeeded at step 100, loss 1.5",
        "evaluate: 3 shards, 1 already stored; 8 items through generator, 8 items through lid, 8 items through judge",
        "evaluate 2/3: chat es s0 tiny/mono done (4 items, 1 errors, 3s)",
        "evaluate 2/3 (1 failed): chat ru s0 tiny/mono failed: UNAVAILABLE: judge down",
        "data multi-2: built",
    ]


def test_on_a_terminal_a_bar_per_training_job_the_shards_and_each_service():
    console = recorded()
    view = ProgressView(console, live=True)  # not entered: the bars are drawn once below, not refreshed
    view(TrainingProgress("tiny/mono", 10, 100, 2.25, 5000.0, 90.0))
    view(PLAN)
    view(ShardDone("a", 4, 0, 3.0))
    console.print(view.bars)
    text = console.export_text()
    training = next(line for line in text.splitlines() if line.startswith("train tiny/mono"))
    assert "10/100" in training and "loss 2.25" in training and "5,000 tok/s" in training
    assert "ETA 1m30s" in training
    assert any(line.startswith("evaluate shards") and "2/3" in line for line in text.splitlines())
    services = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    assert set(services) == {"generator", "lid", "judge"} and all("4/8" in line for line in services.values())


def test_stdout_gets_only_the_paths_and_stderr_the_summary(tmp_path, capsys):
    paths = _report(tmp_path)
    console = recorded()
    view = ProgressView(console, live=False)
    view(PLAN)
    view(ShardDone("a", 4, 0, 3.0))
    view.finish(paths, study="smoke", json_out=False)
    out = capsys.readouterr().out.splitlines()
    assert out == [str(tmp_path / "aggregate.json"), paths["html"], paths["md"], paths["store"]]
    summary = console.export_text()
    assert "study smoke: summary" in summary and "helpfulness 3.500" in summary  # the mean of es (3) and ru (4)
    assert "1/2" in summary  # chat: one shard of two done


def test_json_is_one_object_with_status_paths_and_summary(tmp_path, capsys):
    paths = _report(tmp_path)
    view = ProgressView(recorded(), live=False)
    view(PLAN)
    view(ShardDone("a", 4, 0, 3.0))
    view.finish(paths, study="smoke", json_out=True)
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "succeeded" and document["results"] == str(tmp_path / "aggregate.json")
    assert document["report_html"] == paths["html"] and document["shards"] == {"planned": 3, "done": 2, "failed": 0}
    chat = next(row for row in document["summary"] if row["task"] == "chat")
    assert (chat["metric"], chat["value"], chat["cells"], chat["shards_done"]) == ("helpfulness", 3.5, 2, 1)
    view.failed("interrupted", "kept 1 shard", study="smoke", json_out=True)
    assert json.loads(capsys.readouterr().out)["status"] == "interrupted"


def test_quiet_draws_nothing_yet_prints_the_paths(tmp_path, capsys):
    paths = _report(tmp_path)
    console = recorded()
    view = ProgressView(console, quiet=True)
    view(PLAN)
    view(ShardDone("a", 4, 0, 3.0))
    view.log("services up")
    view.finish(paths, study="smoke", json_out=False)
    assert console.export_text() == ""
    assert capsys.readouterr().out.splitlines()[0] == str(tmp_path / "aggregate.json")


def test_quiet_and_live_keep_prefects_info_lines_out_until_the_run_ends(monkeypatch):
    monkeypatch.delenv("PREFECT_LOGGING_LEVEL", raising=False)
    logger = logging.getLogger("prefect")
    before = logger.level
    with ProgressView(recorded(), quiet=True):
        assert os.environ["PREFECT_LOGGING_LEVEL"] == "WARNING" and not logger.isEnabledFor(logging.INFO)
    assert "PREFECT_LOGGING_LEVEL" not in os.environ and logger.level == before


def test_without_a_sink_events_are_logged_and_a_failing_sink_is_harmless(caplog):
    with caplog.at_level(logging.INFO, logger="flows.progress"):
        progress.emit(DataProgress("chat/es", 4, 4, "skipped"))
    assert "data chat/es: already built" in caplog.text

    def broken(event):
        raise RuntimeError("the terminal went away")

    with progress.using(broken):
        progress.emit(ShardDone("a", 1, 0, 1.0))  # does not raise
    seen = []
    with progress.using(seen.append):
        progress.emit(ShardDone("a", 1, 0, 1.0))
    assert seen == [ShardDone("a", 1, 0, 1.0)]


def test_summary_rows_come_from_the_aggregate_alone_when_nothing_was_tracked(tmp_path):
    aggregate = json.loads((_report(tmp_path) and tmp_path / "aggregate.json").read_text())
    rows = summary_rows(progress.Tracker(), aggregate)
    assert [(r["task"], r["model"], r["value"], r["shards_done"]) for r in rows] == [
        ("chat", "tiny/mono", 3.5, None),
        ("xquad", "tiny/mono", 0.25, None),
    ]
    assert results_of({"results": "r.jsonl", "md": "x/report.md"}) == {"results": "r.jsonl", "report_md": "x/report.md"}


def test_data_build_lists_its_datasets_on_stdout_a_uri_a_line_or_as_json(capsys):
    from flows.data.build import Built
    from flows.data.cli import _results
    from flows.data.manifest import DatasetManifest

    def built(name: str, new: bool) -> Built:
        manifest = DatasetManifest(
            kind="mix", name=name, key=f"datasets/{name}/ab", data="data.jsonl", data_sha256="0" * 64, rows=160,
            counts={}, inputs_sha256="0" * 64, version=1,
        )  # fmt: skip
        return Built(manifest, f"file:///s/datasets/{name}/ab/data.jsonl", new)

    results = [built("mono", True), built("multi-2", False)]
    _results(results, "smoke", "file:///s/", quiet=True, json_=False)
    assert capsys.readouterr().out.splitlines() == [b.uri for b in results]
    _results(results, "smoke", "file:///s/", quiet=True, json_=True)
    document = json.loads(capsys.readouterr().out)
    assert (document["status"], document["built"], document["already"]) == ("succeeded", 1, 1)
    assert [d["uri"] for d in document["datasets"]] == [b.uri for b in results]


def _report(tmp_path) -> dict[str, str]:
    """A report directory as the study leaves it: the report files and the aggregate beside them."""
    rows = [
        _row("chat", "es", "helpfulness", 3.0),
        _row("chat", "ru", "helpfulness", 4.0),
        _row("chat", "es", "lang_match", 1.0),  # not the headline
        _row("xquad", "es", "em", 0.25),
    ]
    (tmp_path / "aggregate.json").write_text(json.dumps({"rows": rows}))
    for name in ("report.html", "report.md"):
        (tmp_path / name).write_text("report")
    return {"html": str(tmp_path / "report.html"), "md": str(tmp_path / "report.md"), "store": "s3://b/reports/x"}


def _row(task: str, language: str, metric: str, mean: float) -> dict:
    return {"base_model": "tiny", "mix": "mono", "task": task, "language": language, "metric": metric, "mean": mean}


@pytest.fixture(autouse=True)
def _no_sink_left():
    yield
    assert progress._sink is None
