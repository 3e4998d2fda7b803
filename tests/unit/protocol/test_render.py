"""The paper's prompts rendered from fixture sources shaped like its files, byte for byte.

Every expectation below is written out by hand from the fixture's text (tests/fixtures/paper_repo.py) and
what the paper's code does with it: `str.format`, then `.strip()` where its notebooks strip.
"""

from __future__ import annotations

import json

import pytest

from flows.protocol import render, sources
from flows.protocol.paper_texts import PaperSourceError, load_paper_texts, parse_chat_script, parse_prompt_notebook
from services.common.errors import InvalidArgument
from services.judge.prompts import GRADE, TRANSLATE, TemplateLibrary
from tests.fixtures.paper_repo import fixture_pins, write_paper_repo

PASSAGE, QUESTION = "  Die Brücke ist 40 m lang. \n", " Wie lang ist die Brücke?\t"


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    files = write_paper_repo(root / "repo")
    pins = fixture_pins(files)
    sources.install(root / "sources", pins, files)
    return load_paper_texts(root / "sources", pins)


def test_judge_messages_are_the_scripts_system_and_formatted_user_message(texts):
    messages = render.judge_messages(texts, "Why is the sky {blue}?", " It scatters light.\n")
    assert messages == [
        {"role": "system", "content": "You grade answers carefully."},
        {
            "role": "user",
            # the trailing spaces after "below." and after the prompt are the script's; nothing is stripped
            "content": "Grade the answer below. \n\n[Q]: Why is the sky {blue}? \n[A]:  It scatters light.\n\n\n"
            'Reply as JSON: {"reasoning": str, "score": int}\n\n',
        },
    ]
    assert dict(texts.judge.defaults) == {"eval_model_name": "judge-model-0001", "api_seed": 42, "temperature": 0.0}


def test_translation_messages(texts):
    assert render.translation_messages(texts, "Hello, world", "German") == [
        {"role": "system", "content": "You are a translator."},
        {
            "role": "user",
            "content": 'Put this text into German. \nKeep the layout.\n\nSource: "Hello, world"\n\nIn German:',
        },
    ]


def test_the_judge_service_sends_the_same_messages_from_the_template_files_it_is_given(texts, tmp_path):
    render.write_judge_templates(texts, tmp_path, repair=False)
    library = TemplateLibrary(user_dir=tmp_path)
    grade = library.load("paper", GRADE)
    assert (grade.repair, grade.parsing) == (False, "strict")
    prompt, response = "Why {x} {{prompt}}?", "Because."
    assert grade.messages(prompt=prompt, response=response, language="English") == render.judge_messages(
        texts, prompt, response
    )
    translate = library.load("translate", TRANSLATE)  # the directory's chat template overrides the built-in
    assert translate.messages(text="Hi", target_language="German", source_language="English") == (
        render.translation_messages(texts, "Hi", "German")
    )


# en:xx: the English template and English forced prefix around the target-language passage; the inputs and
# the whole text stripped, so the template's leading newline and the newline after the prefix go.
EN_XX = (
    "### Human: Read the text and answer.\n\nText:\n\nDie Brücke ist 40 m lang.\n\nAsk:\n\nWie lang ist die Brücke?"
    "\n\nQuote it.### Assistant:",
    ' The text says "',
)
XX_XX = {
    "en": EN_XX,
    "de": (
        "### Human: Lies den Text.\n\nText:\n\nDie Brücke ist 40 m lang.\n\nFrage:\n\nWie lang ist die Brücke?"
        "\n\nZitiere.### Assistant:",
        " Im Text steht „",
    ),
    "zh": (
        "### Human：读文字。\n\n文字：\n\nDie Brücke ist 40 m lang.\n\n问：\n\nWie lang ist die Brücke?"
        "\n\n引用。 ### Assistant：",
        '文字说 "',
    ),
    # the template's prefix ends in a space before the newline: `.strip()` removes both
    "vi": (
        "### Human: Doc van ban.\n\nVan ban:\n\nDie Brücke ist 40 m lang.\n\nHoi:\n\nWie lang ist die Brücke?"
        "\n\nTrich dan.### Assistant:",
        " Van ban noi la",
    ),
    # a space before a newline inside the text stays; the prefix spans lines
    "ar": (
        "### Human:\n\nاقرأ النص. \n\nDie Brücke ist 40 m lang.\n\nWie lang ist die Brücke?\n\n### Assistant:",
        "\n\n” النص يقول",
    ),
}


@pytest.mark.parametrize("language", sorted(XX_XX))
def test_xquad_prompts_every_language_both_modes(texts, language):
    assert texts.xquad.languages == ["en", "de", "zh", "vi", "ar"]
    assert render.xquad_prompt(texts.xquad, language, "xx:xx", PASSAGE, QUESTION) == XX_XX[language]
    assert render.xquad_prompt(texts.xquad, language, "en:xx", PASSAGE, QUESTION) == EN_XX
    prompt, prefix = XX_XX[language]
    assert render.xquad_instruction(texts.xquad, language, "xx:xx", PASSAGE, QUESTION) == prompt + prefix


def test_xquad_names_the_languages_the_paper_has(texts):
    with pytest.raises(InvalidArgument, match="no xquad template in 'fi'.*en, de, zh, vi, ar") as caught:
        render.xquad_prompt(texts.xquad, "fi", "xx:xx", PASSAGE, QUESTION)
    assert caught.value.field == "evaluation.tasks.xquad.languages"


XCSQA = {
    "en": (
        '### Human: Pick one of "A" to "E".\n\nAsk:\n\n Is ice cold? \n\nChoices:\n\nA: yes\nB: no\nC:  maybe\n'
        "D: never\nE: always\n\n### Assistant:",
        ' "',
    ),
    # the German template's space after the last option is the notebook's and stays
    "de": (
        '### Human: Wähle "A" bis "E".\n\nFrage:\n\n Is ice cold? \n\nWahl:\n\nA: yes\nB: no\nC:  maybe\n'
        "D: never\nE: always \n\n### Assistant:",
        ' "',
    ),
    "fr": (
        '### Human: Choisis "A" à "E".\n\nQuestion :\n\n Is ice cold? \n\nChoix :\n\nA: yes\nB: no\nC:  maybe\n'
        "D: never\nE: always\n\n### Assistant:",
        ' "',
    ),
}


@pytest.mark.parametrize("language", sorted(XCSQA))
def test_xcsqa_prompts_every_language(texts, language):
    # The notebook strips neither the question nor the options, only the formatted whole.
    options = ["yes", "no", " maybe", "never", "always"]
    assert render.xcsqa_prompt(texts.xcsqa, language, " Is ice cold? ", options) == XCSQA[language]


def test_alpaca_eval_prompts_and_mono_ids(texts):
    assert render.alpaca_eval_prompts(texts, "de") == ('"Wie fliegen Drachen?"', '"Nenne drei blaue Früchte."')
    assert texts.mono_ids == (31, 7, 1204, 58)
    with pytest.raises(InvalidArgument, match="no AlpacaEval prompts in 'fi'"):
        render.alpaca_eval_prompts(texts, "fi")


def test_split_prompt_keeps_the_text_whole():
    assert render.split_prompt("### Human: a### Assistant: b ### Assistant: „") == (
        "### Human: a### Assistant: b ### Assistant:",
        " „",
    )
    assert render.split_prompt("no marker") == ("no marker", "")


def test_a_script_without_message_building_is_named():
    with pytest.raises(PaperSourceError, match="llm_judge.py: no system and user messages"):
        parse_chat_script('system_message = "x"\n', "llm_judge.py")


def test_a_notebook_without_the_template_table_is_named():
    notebook = json.dumps({"cells": [{"cell_type": "code", "source": ["x = 1\n"], "metadata": {}, "outputs": []}]})
    with pytest.raises(PaperSourceError, match="no `language_prompts` dict"):
        parse_prompt_notebook(notebook, "prep.ipynb")
