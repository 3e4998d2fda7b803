"""The language gate's verdict travels as `GradeResult.note`, and for one version also as an OK status's
message, where clients older than the field read it; the client reads the field first."""

from __future__ import annotations

import grpc
from polyglot.v1 import common_pb2, judge_pb2, judge_pb2_grpc

from services.judge.client import graded
from services.judge.records import Outcome
from tests.fixtures.judge import running_judge

GERMAN_FOR_ENGLISH = judge_pb2.GradeItem(
    prompt="Frage?", response="Dies ist eine Antwort auf Deutsch, ganz ohne Englisch.", target_language="en"
)


def test_a_gated_item_carries_its_verdict_in_note(openai_server, judge_settings_factory, lid_service):
    settings = judge_settings_factory(openai_server.base_url, lid_address=lid_service)
    request = judge_pb2.GradeRequest(items=[GERMAN_FOR_ENGLISH])
    with running_judge(settings) as address, grpc.insecure_channel(address) as channel:
        result = judge_pb2_grpc.JudgeServiceStub(channel).Grade(request, timeout=60).results[0]
    assert result.outcome == judge_pb2.GRADE_OUTCOME_LANGUAGE_MISMATCH and result.score == 1
    assert "language gate" in result.note
    assert (result.status.code, result.status.message) == (0, result.note)  # the old place, for one version
    assert openai_server.count == 0  # gated: no model call


def test_the_client_reads_note_first_and_falls_back_to_the_status_message():
    mismatch = {"score": 1, "outcome": judge_pb2.GRADE_OUTCOME_LANGUAGE_MISMATCH}
    new = judge_pb2.GradeResult(**mismatch, note="gate: de, not en", status=common_pb2.ItemStatus(message="stale"))
    old = judge_pb2.GradeResult(**mismatch, status=common_pb2.ItemStatus(message="gate: de, not en"))
    records = graded(judge_pb2.GradeResponse(results=[new, old])).records
    assert [(r.outcome, r.note) for r in records] == [(Outcome.LANGUAGE_MISMATCH, "gate: de, not en")] * 2
