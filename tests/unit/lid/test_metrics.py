from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.lid.core import Identification, Prediction
from services.lid.metrics import agreement, lang_match, language_of, rates, tgt_lang


def ident(language: str, prob: float = 0.95, raw: str | None = None) -> Identification:
    return Identification(0, (Prediction(language, "Latn", raw or f"__label__{language}", prob),))


FAILED = Identification(0, (), "texts[0]: empty or whitespace-only text", "texts[0]")


def test_language_of():
    assert language_of(ident("de")) == "de"
    assert language_of(ident("", raw="__label__dan_Latn")) == "dan_Latn"  # outside the registry: raw label
    assert language_of(ident("de", 0.5), min_confidence=0.8) is None
    assert language_of(FAILED) is None and language_of(None) is None
    assert language_of(ident("fr").top) == "fr"


def test_lang_match():
    assert lang_match(ident("de"), ident("de"))
    assert not lang_match(ident("de"), ident("en"))
    assert lang_match(ident("", raw="__label__da"), ident("", raw="__label__da"))
    assert not lang_match(ident("de", 0.6), ident("de"), min_confidence=0.8)  # unsure is not a match
    assert not lang_match(FAILED, FAILED)


def test_tgt_lang():
    assert tgt_lang(ident("de"), "de") and tgt_lang(ident("de"), "deu_Latn")
    assert not tgt_lang(ident("en"), "de")
    assert not tgt_lang(ident("de", 0.3), "de", min_confidence=0.8)
    with pytest.raises(InvalidArgument):
        tgt_lang(ident("de"), "not-a-language")


def test_agreement_and_rates():
    items = [
        agreement(ident("de"), ident("de"), "de"),
        agreement(ident("de"), ident("en"), "de"),
        agreement(ident("en"), ident("en")),
        agreement(ident("es"), FAILED, "es"),
    ]
    assert items[0].lang_match and items[0].tgt_lang
    assert items[2].tgt_lang is None and items[3].response_language is None
    assert rates(items) == {"n": 4, "lang_match": 0.5, "n_target": 3, "tgt_lang": 1 / 3}
    assert rates([]) == {"n": 0, "lang_match": None, "n_target": 0, "tgt_lang": None}
