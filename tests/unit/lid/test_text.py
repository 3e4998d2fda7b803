from __future__ import annotations

import pytest

from services.lid.text import count_tokens, is_blank, prepare, split_lines


def test_prepare_turns_newlines_and_nul_into_spaces():
    assert prepare("eins\nzwei\r\ndrei") == "eins zwei\r drei"
    assert prepare("a\x00b") == "a b"
    assert prepare("no change") == "no change"


def test_prepare_strips_role_markers_only_on_request():
    text = "### Human: ¿Qué tal? ### Assistant: Muy bien, gracias."
    assert prepare(text) == text
    assert prepare(text, strip_role_markers=True) == "  ¿Qué tal?   Muy bien, gracias."
    assert prepare("###Human:hola ###  Assistant :adiós", True) == " hola  adiós"


@pytest.mark.parametrize("text", ["", " ", "\t\n", "\u3000\u2003", prepare("\x00 \x00")])
def test_blank(text):
    assert is_blank(prepare(text))


@pytest.mark.parametrize("text", ["a", " x ", "\u200b", "!!!", "😀"])
def test_not_blank(text):
    assert not is_blank(prepare(text))


@pytest.mark.parametrize(
    ("line", "tokens"),
    [
        ("one two three four five", 5),
        ("  spaced   out\ttokens ", 3),
        ("今天天气很好", 6),  # Chinese: one token per character
        ("東京へ行きます", 7),  # Japanese kanji and kana
        ("สวัสดีครับ", 10),  # Thai is written without spaces too
        ("Python 是一种语言", 6),  # mixed: 1 word + 5 characters
        ("Привет, как дела?", 3),
        ("", 0),
    ],
)
def test_count_tokens(line, tokens):
    assert count_tokens(line) == tokens


def test_split_lines_on_every_line_boundary_and_drops_blank_lines():
    assert split_lines("a\nb\r\nc\rd\u2028e\n\n  \nf") == ["a", "b", "c", "d", "e", "f"]
