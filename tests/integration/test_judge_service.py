"""The judge as a gRPC service (shared runtime, real servicer, `JudgeClient` over loopback).

Bad input fails the call as INVALID_ARGUMENT naming the field; Grade, GradeStream, Translate and GetUsage
carry the core's records; the lid service (real, in-process) gates through `POLYGLOT_JUDGE_LID_ADDRESS`.
"""

from __future__ import annotations

import pytest

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.judge.client import JudgeClient
from services.judge.records import GradeItem, Outcome
from tests.fixtures.judge import grade_reply, running_judge


@pytest.fixture
def judge_address(openai_server, judge_settings_factory, lid_service):
    settings = judge_settings_factory(openai_server.base_url, lid_address=lid_service)
    with running_judge(settings) as address:
        yield address


@pytest.fixture
def client(judge_address):
    with JudgeClient(judge_address, timeout=60) as client:
        yield client


def good(n: int) -> GradeItem:
    return GradeItem(f"Question {n}?", "This is a helpful and complete English answer.", "en", id=f"id{n}")


@pytest.mark.parametrize(
    ("items", "template", "field"),
    [
        ([good(0), good(1), good(2), GradeItem("Q?", "   ", "en")], "", "items[3].response"),
        ([good(0), GradeItem("Q?", "An answer.", "")], "", "items[1].target_language"),
        ([GradeItem("Q?", "An answer.", "klingon")], "", "items[0].target_language"),
        ([GradeItem("", "An answer.", "en")], "", "items[0].prompt"),
        ([good(0)], "translate", "template"),
        ([good(0)], "no-such-rubric", "template"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field(client, openai_server, items, template, field):
    with pytest.raises(InvalidArgument) as info:
        client.grade(items, template=template)
    assert str(info.value).startswith(f"{field}: ")
    assert openai_server.count == 0  # rejected before any call


def test_bad_input_fails_the_stream_too(client, openai_server):
    with pytest.raises(InvalidArgument, match=r"^items\[1\]\.response: "):
        list(client.grade_stream([good(0), GradeItem("Q?", "", "de")]))
    assert openai_server.count == 0


def test_template_without_placeholders_from_a_uri(client, tmp_path):
    path = tmp_path / "store" / "rubric.txt"  # the judge's store is one of its template roots
    path.parent.mkdir(exist_ok=True)
    path.write_text("Rate the answer to {{prompt}} from 1 to 6.", encoding="utf-8")
    with pytest.raises(InvalidArgument, match=r"^template: .*\{\{response\}\}"):
        client.grade([good(0)], template=path.as_uri())


def test_unknown_provider_and_bad_run_id(client):
    with pytest.raises(InvalidArgument, match=r"^judge\.provider: "):
        client.grade([good(0)], provider="nope")
    with pytest.raises(InvalidArgument, match=r"^run_id: "):
        client.grade([good(0)], run_id="../escape")
    with pytest.raises(InvalidArgument, match=r"^target_language: "):
        client.translate(["Hi"], target_language="")
    with pytest.raises(NotFound, match=r"^run_id: "):
        client.usage("never-ran")


def test_grade_stream_translate_and_usage_over_grpc(client, openai_server):
    openai_server.script("Question 1?", grade_reply(6))
    items = [good(0), good(1), GradeItem("Frage?", "Dies ist eine Antwort auf Deutsch, ganz ohne Englisch.", "en")]
    graded = client.grade(items, run_id="svc")
    assert [r.index for r in graded.records] == [0, 1, 2]
    assert [r.id for r in graded.records] == ["id0", "id1", ""]
    assert [r.score for r in graded.records] == [4, 6, 1]
    assert graded.records[2].outcome is Outcome.LANGUAGE_MISMATCH and graded.records[2].detected_language == "de"
    assert "language gate" in graded.records[2].note
    assert graded.usage.requests == 2 and openai_server.count == 2

    streamed = sorted(client.grade_stream(items, run_id="svc"), key=lambda r: r.index)
    assert [r.score for r in streamed] == [4, 6, 1] and [r.cached for r in streamed] == [True, True, False]
    assert openai_server.count == 2

    translated = client.translate(["Good night"], target_language="sv", run_id="svc")
    assert translated.records[0].error is None and translated.usage.requests == 1

    usage = client.usage("svc")
    assert (usage.requests, usage.cached) == (3, 2) and usage.cost_usd > 0


def test_missing_lid_without_response_language_is_a_failed_precondition(openai_server, judge_settings_factory):
    with running_judge(judge_settings_factory(openai_server.base_url)) as address, JudgeClient(address) as client:
        with pytest.raises(FailedPrecondition, match=r"items\[0\]\.response_language"):
            client.grade([good(0)])
        graded = client.grade([GradeItem("Q?", "An answer in English.", "en", response_language="en")])
        assert graded.records[0].outcome is Outcome.GRADED


def test_an_outage_ends_the_stream_unavailable_after_the_finished_items(openai_server, judge_settings_factory):
    from services.common.errors import Unavailable
    from tests.fixtures.judge import Error

    openai_server.script("Question 1?", Error(503), repeat_last=True)
    settings = judge_settings_factory(openai_server.base_url, max_attempts=2)
    items = [GradeItem(f"Question {n}?", "An answer in English.", "en", response_language="en") for n in range(3)]
    received = []
    with (
        running_judge(settings) as address,
        JudgeClient(address) as client,
        pytest.raises(Unavailable, match=r"1 of 3 items were not graded"),
    ):
        for record in client.grade_stream(items):
            received.append(record)
    assert sorted(r.index for r in received) == [0, 2] and all(r.outcome is Outcome.GRADED for r in received)
