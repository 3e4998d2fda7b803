"""The one Guanaco layout: parsing, formatting, prompts, and the text LID sees."""

from __future__ import annotations

from flows.data import guanaco
from flows.data.guanaco import Turn


def test_hub_layout_round_trips():
    text = "### Human: Hi there?### Assistant: Hello!### Human: Bye.### Assistant: See you."
    assert guanaco.parse(text) == [
        Turn("human", "Hi there?"),
        Turn("assistant", "Hello!"),
        Turn("human", "Bye."),
        Turn("assistant", "See you."),
    ]
    assert guanaco.normalise(text) == text


def test_spaced_layout_is_normalised_to_the_hub_layout():
    spaced = "### Human: Hola ### Assistant: ¿Qué tal? ### Human:  Bien\n ### Assistant: Genial"
    assert guanaco.normalise(spaced) == "### Human: Hola### Assistant: ¿Qué tal?### Human: Bien### Assistant: Genial"
    assert guanaco.normalise(guanaco.normalise(spaced)) == guanaco.normalise(spaced)


def test_open_assistant_turn_is_kept_and_inner_newlines_survive():
    text = "### Human: Write code ### Assistant:"
    assert guanaco.parse(text) == [Turn("human", "Write code"), Turn("assistant", "")]
    assert guanaco.normalise(text) == "### Human: Write code### Assistant:"
    reply = guanaco.parse("### Human: a### Assistant: line 1\n\n```py\nx = 1\n```")[1]
    assert reply.content == "line 1\n\n```py\nx = 1\n```"


def test_plain_text_is_one_human_turn():
    assert guanaco.parse("just a question") == [Turn("human", "just a question")]
    assert guanaco.parse("   ") == []


def test_prompt_is_the_papers_template():
    assert guanaco.prompt(" Wie spät ist es? ") == "### Human: Wie spät ist es?### Assistant:"


def test_lid_text_has_no_markers_and_no_newlines():
    text = "### Human: Hallo Welt\nwie geht's?### Assistant: Gut,\n\ndanke."
    assert guanaco.strip_role_markers(text) == "Hallo Welt wie geht's? Gut, danke."


def test_complete_conversations():
    assert guanaco.is_complete("### Human: a### Assistant: b### Human: c### Assistant: d")
    assert not guanaco.is_complete("### Human: a### Assistant:")  # no reply
    assert not guanaco.is_complete("### Human: a### Assistant: b### Human: c")  # ends with the human
    assert not guanaco.is_complete("### Assistant: b### Human: a### Assistant: c")  # starts with the reply
    assert not guanaco.is_complete("### Human: a### Human: b### Assistant: c")  # roles do not alternate
    assert not guanaco.is_complete("### Human: a")
