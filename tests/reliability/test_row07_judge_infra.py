"""Row 7: when the judge's provider retries ran out, its cache store blipped or its disk was full, Grade
answered OK with items marked ERROR (on a full disk the paid reply was thrown away); the study stored the
shard as done and a rerun never graded them again. Reproduced before the fix: an endpoint answering 503
gave an OK call with an ERROR item (code UNAVAILABLE) that `flows.grading` turned into outcome `error`; a
failing cache read or write gave an ERROR item with code INTERNAL.

Remedy (services/judge/grading.py, cache.py, storage.py; flows/grading.py): such an item is never answered;
the call fails UNAVAILABLE (RESOURCE_EXHAUSTED for a full store) after the other items finish, their paid
replies cached, so the client's and the study's retries pay only for what is missing. A failing cache read
buys nothing; a failing cache write keeps the paid reply in memory (served from there, written when the
store recovers), and once `max_unsaved_replies` wait no new request is bought. `flows.grading` also raises
for an item a judge answers with a transient code, so a shard is never stored with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.grading import grade_replies
from services.common.errors import ResourceExhausted, Unavailable
from services.judge.client import JudgeClient
from services.judge.records import GradeItem, Outcome
from tests.fixtures.judge import Error, running_judge
from tests.reliability.faults import inject


def items(*numbers: int) -> list[GradeItem]:
    return [GradeItem(f"Question {n}?", f"An English answer, number {n}.", "en", id=f"q{n}", response_language="en")
            for n in numbers]  # fmt: skip


@pytest.fixture
def faulty_store(tmp_path: Path):
    """(faults, store URI) of a judge store whose reply-cache objects fail on cue."""
    return inject(tmp_path / "store", prefix="judge/cache/")


def test_exhausted_provider_retries_fail_the_call_and_a_retry_pays_only_for_the_rest(
    openai_server, judge_settings_factory
):
    openai_server.script("Question 1?", Error(503), Error(503))
    settings = judge_settings_factory(openai_server.base_url, max_attempts=2)
    with running_judge(settings) as address, JudgeClient(address, retries=1) as judge:
        with pytest.raises(Unavailable, match=r"1 of 3 items were not graded .*items\[1\]: gave up after 2"):
            judge.grade(items(0, 1, 2))
        assert openai_server.count == 4  # two attempts for item 1, one each for the others
        graded = judge.grade(items(0, 1, 2))  # the provider is back
    assert [(r.outcome, r.cached) for r in graded.records] == [
        (Outcome.GRADED, True), (Outcome.GRADED, False), (Outcome.GRADED, True)
    ]  # fmt: skip
    assert openai_server.count == 5  # nothing paid twice


def test_a_study_shard_is_not_graded_while_the_judge_provider_is_down(
    openai_server, judge_settings_factory, lid_client
):
    openai_server.script("Question 1?", Error(503), repeat_last=True)
    settings = judge_settings_factory(openai_server.base_url, max_attempts=2)
    with (
        running_judge(settings) as address,
        JudgeClient(address, retries=1) as judge,
        pytest.raises(Unavailable),  # the step raises: Prefect retries it, nothing is stored as done
    ):
        grade_replies(
            lid_client, judge, prompts=["Question 0?", "Question 1?"],
            replies=["An English answer, number 0.", "An English answer, number 1."], targets=["en", "en"],
            grade_ids=["q0", "q1"], judged_metrics=lambda grade, *rest: {"helpfulness": float(grade.score)},
            judge_options={}, run_id="study",
        )  # fmt: skip


def test_a_store_blip_on_a_cache_read_fails_the_call_retryably_and_buys_nothing(
    openai_server, judge_settings_factory, faulty_store
):
    faults, store_uri = faulty_store
    faults.failing_reads = 100
    settings = judge_settings_factory(openai_server.base_url, store_uri=store_uri, store_attempts=2)
    with running_judge(settings) as address, JudgeClient(address, retries=1) as judge:
        with pytest.raises(Unavailable, match="the judge's store failed: could not read a cached reply"):
            judge.grade(items(0, 1))
        assert openai_server.count == 0 and faults.failed_reads >= 2
        faults.failing_reads = 0  # the store is back
        assert [r.outcome for r in judge.grade(items(0, 1)).records] == [Outcome.GRADED] * 2
    assert openai_server.count == 2


def test_a_full_disk_keeps_paid_replies_and_nothing_is_billed_twice(
    openai_server, judge_settings_factory, faulty_store
):
    faults, store_uri = faulty_store
    faults.disk_full = True
    settings = judge_settings_factory(openai_server.base_url, store_uri=store_uri, max_unsaved_replies=3)
    with running_judge(settings) as address, JudgeClient(address, retries=1) as judge:
        first = judge.grade(items(0, 1, 2))
        assert [r.outcome for r in first.records] == [Outcome.GRADED] * 3  # the paid replies are answered
        assert faults.failed_writes >= 3 and openai_server.count == 3
        again = judge.grade(items(0, 1, 2))  # e.g. a retried call: served from memory, not bought again
        assert all(r.cached for r in again.records) and openai_server.count == 3
        with pytest.raises(ResourceExhausted, match="the judge's store is full"):
            judge.grade(items(3))  # three replies wait for the disk: no more are bought
        assert openai_server.count == 3
        faults.disk_full = False  # space freed: the next call writes what waited
        assert judge.grade(items(3)).records[0].outcome is Outcome.GRADED
        assert openai_server.count == 4
    with running_judge(settings) as address, JudgeClient(address) as judge:  # a restarted judge
        assert all(r.cached for r in judge.grade(items(0, 1, 2, 3)).records)
    assert openai_server.count == 4
