"""The per-language data files: every language the study needs has its entry, in the registry's codes."""

from __future__ import annotations

import pytest

from flows.evals import TASKS
from flows.evals.language_data import languages, table
from services.common import languages as registry

STUDY = registry.codes(registry.STUDY_LANGUAGES)


@pytest.mark.parametrize("name", ["xquad", "xcsqa", "xnli"])
def test_keys_are_registry_codes(name: str):
    for code in languages(name):
        assert registry.get(code).code == code


def test_xquad_covers_the_13_study_languages_and_xquads_own():
    assert set(STUDY) | set(TASKS.get("xquad").languages) <= set(languages("xquad"))
    for code, data in table("xquad").items():
        assert "{passage}" in data["template"] and "{question}" in data["template"], code
        assert data["prefix"].strip() and not data["prefix"].endswith(" "), code
        assert data.get("tokens", "words") in ("words", "chars")
    assert table("xquad")["en"]["prefix"] == "Based on the passage, the answer to the question is"


def test_xcsqa_and_xnli_cover_their_benchmarks_languages():
    in_registry = {
        code for code in TASKS.get("xcsqa").languages if registry.resolve(code) and registry.resolve(code).code == code
    }
    assert in_registry <= set(languages("xcsqa"))
    for code, data in table("xcsqa").items():
        assert "{question}" in data["template"] and "{options}" in data["template"] and data["prefix"], code
    assert set(TASKS.get("xnli").languages) == set(languages("xnli"))
    assert all(
        set(words) == {"question_word", "entailment", "neutral", "contradiction"} for words in table("xnli").values()
    )


def test_registry_of_tasks():
    assert {"chat", "xquad", "xcsqa", "xnli"} <= set(TASKS.names())
    assert {name: TASKS.get(name).method for name in ("chat", "xquad", "xcsqa", "xnli")} == {
        "chat": "generate",
        "xquad": "generate",
        "xcsqa": "generate",
        "xnli": "loglikelihood",
    }
