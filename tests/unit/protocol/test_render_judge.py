"""The paper's judge and translation messages as the judge service sends them: the real `openai` client
against the scripted OpenAI-compatible server on 127.0.0.1, with the template directory
`render.write_judge_templates` writes from fixture sources. What reaches the endpoint is exactly what the
paper's scripts build; a verdict the paper's `json.loads` cannot read is UNPARSABLE with no repair call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.protocol import render, sources
from flows.protocol.paper_texts import load_paper_texts
from services.judge.parsing import ReplyError, parse_verdict_strict
from services.judge.records import GradeItem, GradeJob, Outcome
from services.judge.translation import TranslateJob
from tests.fixtures.judge import Reply
from tests.fixtures.paper_repo import fixture_pins, write_paper_repo, write_pins

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def template_dir(tmp_path):
    files = write_paper_repo(tmp_path / "repo")
    pins = fixture_pins(files)
    texts = load_paper_texts(sources.install(tmp_path / "sources", pins, files), pins)
    return texts, render.write_judge_templates(texts, tmp_path / "judge-templates", repair=False)


def _item(n: int) -> GradeItem:
    return GradeItem(prompt=f"question {n} ", response=f"answer {n}\n", target_language="en", id=f"q{n}",
                     response_language="en")  # fmt: skip


async def test_paper_messages_seed_and_json_mode_reach_the_endpoint(openai_server, make_judge, template_dir):
    texts, directory = template_dir
    openai_server.script("question 1", Reply({"reasoning": "fine", "score": 5}))
    openai_server.script("question 2", Reply('```json\n{"reasoning": "fenced", "score": 4}\n```'))
    judge = make_judge(openai_server.base_url, template_dir=directory, seed=42)
    records = {r.id: r for r in (await judge.grade(GradeJob([_item(1), _item(2)], template="paper"))).records}
    assert (records["q1"].outcome, records["q1"].score) == (Outcome.GRADED, 5)
    # The paper's script reads the reply with json.loads alone: a fenced object is unreadable, and is
    # counted unparsable (score 0, out of every mean) without a repair request.
    assert (records["q2"].outcome, records["q2"].score) == (Outcome.UNPARSABLE, 0)
    assert openai_server.count == 2
    for request in openai_server.requests:
        n = 1 if "question 1" in request.text else 2
        assert request.body["messages"] == render.judge_messages(texts, f"question {n} ", f"answer {n}\n")
        assert request.body["seed"] == 42 and request.body["temperature"] == 0
        assert request.body["response_format"] == {"type": "json_object"}


async def test_paper_translation_messages_reach_the_endpoint(openai_server, make_judge, template_dir):
    texts, directory = template_dir
    openai_server.script("Kites fly", Reply("Drachen fliegen."))
    judge = make_judge(openai_server.base_url, template_dir=directory)
    result = await judge.translate(TranslateJob(["Kites fly."], target_language="de", source_language="en"))
    assert [r.text for r in result.records] == ["Drachen fliegen."]
    assert openai_server.requests[0].body["messages"] == render.translation_messages(texts, "Kites fly.", "German")


@pytest.mark.parametrize(
    "reply", ['```json\n{"score": 4}\n```', 'Score: {"score": 4}', '[{"score": 4}]', '{"reasoning": "no score"}', ""]
)
def test_strict_parsing_reads_one_json_object_only(reply):
    with pytest.raises(ReplyError):
        parse_verdict_strict(reply)


def test_strict_parsing_accepts_what_json_loads_accepts():
    verdict = parse_verdict_strict('  {"reasoning": "ok", "score": 6}\n')
    assert (verdict.score, verdict.reasoning) == (6, "ok")


def test_a_study_on_the_paper_judge_starts_its_judge_with_the_templates(tmp_path, monkeypatch):
    from flows.config import load_config
    from flows.local import service_env

    files = write_paper_repo(tmp_path / "repo")
    pins = fixture_pins(files)
    monkeypatch.setenv(sources.PINS_ENV, str(write_pins(tmp_path / "pins.yaml", pins)))  # fixtures stand in
    monkeypatch.setenv(sources.SOURCES_ENV, str(tmp_path / "unused"))  # require_paper_sources sets both
    monkeypatch.setattr(sources, "_active", None)
    installed = sources.install(tmp_path / "sources", pins, files)
    cfg = load_config(
        REPO / "configs" / "smoke.yaml",
        {"judge.template": "paper", "judge.seed": "42", "judge.repair": "false", "protocol.sources": str(installed)},
    )
    assert sources.require_paper_sources(cfg) == installed
    env = service_env(cfg, {cfg.base_models[0].name: "ref"}, tmp_path / "state")
    assert (env["POLYGLOT_JUDGE_SEED"], env["POLYGLOT_JUDGE_TEMPERATURE"], env["POLYGLOT_JUDGE_JSON_MODE"]) == (
        "42",
        "0.0",
        "true",
    )
    directory = tmp_path / "state" / "judge-templates"
    assert env["POLYGLOT_JUDGE_TEMPLATE_DIR"] == str(directory.resolve())
    template = json.loads((directory / "paper.json").read_text(encoding="utf-8"))
    texts = load_paper_texts(installed, pins)
    assert (template["system"], template["repair"], template["parsing"]) == (texts.judge.system, False, "strict")
    assert not (directory / "translate.json").exists()  # the translation prompt stays Polyglot's
