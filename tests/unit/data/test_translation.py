"""Turn-by-turn translation of Guanaco conversations (the translate function stands in for an LLM)."""

from __future__ import annotations

import pytest

from flows.data.translation import Translator, translate_conversations


def test_turns_are_translated_and_markers_kept():
    batches = []

    def translate(texts, source, target):
        batches.append(list(texts))
        return [f"{target}:{text.upper()} " for text in texts]

    translator = Translator(translate, "test", batch_size=2)
    texts = ["### Human: hi### Assistant: hello### Human: bye### Assistant: ciao", "### Human: code?### Assistant:"]
    out = translate_conversations(texts, translator, "de")
    assert out == [
        "### Human: de:HI### Assistant: de:HELLO### Human: de:BYE### Assistant: de:CIAO",
        "### Human: de:CODE?### Assistant:",  # an open assistant turn stays open, untranslated
    ]
    assert batches == [["hi", "hello"], ["bye", "ciao"], ["code?"]]


def test_a_translator_returning_the_wrong_count_fails():
    translator = Translator(lambda texts, source, target: texts[:-1], "test")
    with pytest.raises(RuntimeError, match="returned 1 texts for 2"):
        translator(["a", "b"], "en", "de")
