"""Guards on the fastText binding the lid core relies on (`fasttext-predict`, module `fasttext`).

The core calls the C++ `predict` directly, one text at a time, because this binding's list predict drops
the probabilities. If one of these tests fails after an upgrade, revisit `services/lid/core.py`.
"""

from __future__ import annotations

import importlib.metadata
import math

import fasttext
import numpy
import pytest

from services.lid.core import embedded_model_path

SENTENCES = {
    "de": "Das Wetter ist heute sehr schön, wir gehen in den Park.",
    "en": "The weather is lovely today, so we are going to the park.",
    "fr": "Il fait très beau aujourd'hui, nous allons au parc.",
    "ru": "Сегодня прекрасная погода, мы идём в парк.",
    "zh": "今天天气很好，我们去公园散步吧。",
}


@pytest.fixture(scope="module")
def model():
    return fasttext.load_model(str(embedded_model_path()))


def test_the_installed_binding_is_fasttext_predict_beside_numpy_2():
    assert importlib.metadata.version("fasttext-predict") == "0.9.2.4"
    assert int(numpy.__version__.split(".")[0]) >= 2
    assert fasttext.__file__.endswith("fasttext/__init__.py")


def test_single_text_predict_gives_labels_and_probabilities(model):
    for lang, text in SENTENCES.items():
        labels, probs = model.predict(text, k=3)
        assert labels[0] == f"__label__{lang}"
        assert len(labels) == len(probs) == 3
        assert list(probs) == sorted(probs, reverse=True)
        assert 0.5 < probs[0] <= 1.0 + 1e-4 and sum(probs) <= 1.0 + 1e-4


def test_the_cpp_predict_the_core_uses_matches_the_python_wrapper(model):
    for text in SENTENCES.values():
        labels, probs = model.predict(text, k=2)
        raw = model.f.predict(text + "\n", 2, 0.0, "strict")
        assert [label for _, label in raw] == list(labels)
        assert all(math.isclose(p, q) for (p, _), q in zip(raw, probs, strict=True))


def test_list_predict_is_broken_in_this_binding(model):
    # multilinePredict returns labels only; the wrapper then unpacks that list as (labels, probs).
    texts = list(SENTENCES.values())[:3]
    assert model.f.multilinePredict([t + "\n" for t in texts], 1, 0.0, "strict") == [
        ["__label__de"],
        ["__label__en"],
        ["__label__fr"],
    ]
    with pytest.raises(ValueError):
        model.predict(texts, k=1)


def test_binding_pitfalls_the_core_works_around(model):
    with pytest.raises(ValueError, match="one line"):
        model.predict("zwei\nZeilen")
    # NUL separates words like a space; an empty line still gets an answer (hence the core's blank check).
    assert model.f.predict("Das\x00Wetter\x00ist schön\n", 2, 0.0, "strict") == model.f.predict(
        "Das Wetter ist schön\n", 2, 0.0, "strict"
    )
    assert model.f.predict("\n", 1, 0.0, "strict")[0][1] == "__label__en"
    with pytest.raises(TypeError):  # a lone surrogate cannot cross into C++
        model.f.predict("\ud800 text\n", 1, 0.0, "strict")
    with pytest.raises(ValueError, match="k needs"):
        model.f.predict("text\n", 0, 0.0, "strict")
