"""The task hooks and the mix planner on the `paper` settings, with fixture sources standing in for the fetched
ones: XQuAD and X-CSQA items carry the paper's rendering, chat the paper's prompt files, Mono the listed rows."""

from __future__ import annotations

import pytest

from flows.config import MixRecipe
from flows.data.labelling import LabelledConversation
from flows.data.mixes import MixPlanner, read_mono_ids
from flows.evals import chat, xcsqa, xquad
from flows.protocol import render
from flows.protocol.paper_texts import load_paper_texts
from tests.fixtures.paper_repo import ALPACA_EVAL, ML1_IDS, install_fixture_sources


@pytest.fixture
def texts(tmp_path, monkeypatch):
    return load_paper_texts(install_fixture_sources(tmp_path, monkeypatch))


def test_xquad_hook_renders_the_papers_prompt_from_the_raw_passage(texts):
    question = xquad.XquadQuestion(
        "q1", "Die Brücke.", "Wie lang?", ("40 m",), raw_context="\ufeffDie Brücke. ", raw_question=" Wie lang?"
    )
    prompt, prefix = xquad.build_prompt(question, "de", "en:xx", "paper")
    # the paper strips whitespace only: a byte-order mark at the start of a passage stays, as in its files
    assert prompt + prefix == render.xquad_instruction(texts.xquad, "de", "en:xx", "\ufeffDie Brücke.", "Wie lang?")
    assert prompt.endswith("### Assistant:") and prefix == ' The text says "'
    assert xquad.build_prompt(question, "de", "en:xx") != (prompt, prefix)  # polyglot's own template


def test_xcsqa_hook_renders_the_papers_prompt(texts):
    question = xcsqa.XcsqaQuestion("c1", "Is ice cold?", tuple("ABCDE"), ("yes", "no", "maybe", "never", "always"), "A")
    prompt, prefix = xcsqa.build_prompt(question, "fr", "paper")
    assert (prompt, prefix) == render.xcsqa_prompt(texts.xcsqa, "fr", question.stem, question.options)
    assert "\nA: yes\nB: no\n" in prompt and prefix == ' "'


def test_chat_hook_uses_every_paper_prompt_in_file_order(texts):
    options = chat.Options(languages=["de"], alpaca_eval_prompts="paper", sample_size=None)
    items = chat.build_items(options, "de", seed=42)
    assert [item.id for item in items] == ["alpaca_eval/000", "alpaca_eval/001"]
    assert [item.instruction for item in items] == [p.strip() for p in ALPACA_EVAL["de"]]
    assert set(chat.inputs(options, "de")) >= {"alpaca_eval:de", "alpaca_eval:en"}


def _rows(ids: list[int], lang: str = "en") -> list[LabelledConversation]:
    return [LabelledConversation(f"{i:07d}", f"### Human: q{i}### Assistant: a{i}", lang, 0.99) for i in ids]


def test_mono_is_the_listed_rows_in_order_and_multi_takes_a_prefix(texts):
    ids = read_mono_ids("paper")
    assert ids == tuple(ML1_IDS)
    labelled = _rows(list(range(1300))) + _rows(list(range(2000, 2010)), "es")
    recipe = MixRecipe(n=4, k=1, order=["es"], build=["mono", "multi-2"], mono_ids="paper")
    planner = MixPlanner(labelled, recipe, 0.8, mono_ids=ids)
    assert [row.id for row in planner.plan("mono").english] == [f"{i:07d}" for i in ML1_IDS]
    assert [row.id for row in planner.plan("multi-2").english] == [f"{i:07d}" for i in ML1_IDS[:3]]


def test_mono_ids_that_name_no_row_are_refused(texts):
    planner = MixPlanner(_rows([31, 7]), MixRecipe(n=4, k=1, order=["es"], build=["mono"]), 0.8, mono_ids=ML1_IDS)
    with pytest.raises(Exception, match="2 of the 4 Mono ids name no row") as caught:
        planner.plan("mono")
    assert caught.value.field == "data.mixes.mono_ids"
