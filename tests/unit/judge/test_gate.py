"""The language gate's verdicts (the paper's rule: wrong language → score 1, no model call), item by item."""

from __future__ import annotations

from services.judge.grading import Grader
from services.judge.records import Detection, GradeItem, Outcome

ITEM = GradeItem("Hvordan har du det?", "Jeg har det godt, tak.", "no", id="x")


def test_same_language_passes():
    assert Grader._gate(0, ITEM, "no", Detection("no", "__label__no", 0.9)) is None


def test_other_registry_language_scores_one_and_says_why():
    record = Grader._gate(2, ITEM, "no", Detection("sv", "__label__sv", 0.71))
    assert (record.index, record.id, record.score, record.outcome) == (2, "x", 1, Outcome.LANGUAGE_MISMATCH)
    assert record.detected_language == "sv" and record.raw_reply == ""
    assert "Swedish (sv)" in record.note and "Norwegian (no)" in record.note and "p=0.71" in record.note


def test_language_outside_the_registry_is_a_mismatch_too():
    # lid.176 often calls Norwegian Danish; Danish is not a study language, so the registry has no code for it.
    record = Grader._gate(0, ITEM, "no", Detection("", "__label__da", 0.55))
    assert (record.score, record.outcome, record.detected_language) == (1, Outcome.LANGUAGE_MISMATCH, "da")
    assert "outside the registry" in record.note


def test_failed_identification_is_an_error_naming_the_response():
    record = Grader._gate(4, ITEM, "no", Detection("", error="texts[0]: longer than 1000000 bytes"))
    assert (record.score, record.outcome) == (0, Outcome.ERROR)
    assert record.error.field == "items[4].response" and "longer than" in record.error.message
