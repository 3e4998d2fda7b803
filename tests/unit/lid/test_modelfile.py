"""The model-file walk: real lid.176, tiny OpenLID/GlotLID-style files, and every way a file can be broken."""

from __future__ import annotations

import struct

import pytest

from services.common.errors import NotFound
from services.lid.core import embedded_model_path
from services.lid.modelfile import CorruptModel, label_scheme, read_header


@pytest.fixture(scope="module")
def lid176_bytes() -> bytes:
    return embedded_model_path().read_bytes()


def test_lid176_header(shared_dir):
    header = read_header(embedded_model_path())
    assert (header.version, header.dim, header.quantized) == (12, 16, True)
    assert len(header.labels) == 176 and header.labels[:3] == ("__label__en", "__label__ru", "__label__de")
    assert header.label_scheme == "lid176"
    # The wheel's copy is the file in ../shared.
    assert embedded_model_path().read_bytes() == (shared_dir / "models" / "lid" / "lid.176.ftz").read_bytes()


def test_tiny_models_are_read_with_their_schemes(tiny_openlid_model, tiny_glotlid_model):
    openlid = read_header(tiny_openlid_model)
    assert len(openlid.labels) == 201 and "__label__deu_Latn" in openlid.labels
    assert not openlid.quantized and openlid.label_scheme == "openlid"
    assert read_header(tiny_glotlid_model).label_scheme == "glotlid"


@pytest.mark.parametrize(
    ("labels", "scheme"),
    [
        (["__label__en", "__label__de", "__label__als"], "lid176"),
        (["__label__eng_Latn", "__label__zho_Hant"], "openlid"),
        (["__label__1", "__label__2", "__label__3"], "custom"),
        (["__label__positive", "__label__negative"], "custom"),
        ([], "custom"),
    ],
)
def test_label_scheme(labels, scheme):
    assert label_scheme(labels) == scheme


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFound, match=str(tmp_path / "nope.ftz")):
        read_header(tmp_path / "nope.ftz")


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(CorruptModel, match="directory"):
        read_header(tmp_path)


@pytest.mark.parametrize("cut", [0, 4, 8, 60, 100, 1_000, 10_000, 100_000, 500_000, 937_000, -1])
def test_every_truncation_is_caught(tmp_path, lid176_bytes, cut):
    # fastText itself hangs on some of these (the dictionary loop never sees EOF) and loads others silently.
    path = tmp_path / "cut.ftz"
    path.write_bytes(lid176_bytes[:cut])
    with pytest.raises(CorruptModel, match=str(path)):
        read_header(path)


def test_trailing_bytes_and_foreign_files_are_caught(tmp_path, lid176_bytes):
    cases = {
        "trailing.ftz": lid176_bytes + b"\0",
        "text.bin": b"this is not a model\n" * 20,
        "magic-only.bin": struct.pack("<ii", 793712314, 12),
        "future-version.bin": struct.pack("<ii", 793712314, 13) + lid176_bytes[8:],
        # the same file with `model` switched to skipgram: word vectors, not a classifier
        "vectors.bin": lid176_bytes[: 8 + 7 * 4] + struct.pack("<i", 2) + lid176_bytes[8 + 8 * 4 :],
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CorruptModel, match=name):
            read_header(path)
