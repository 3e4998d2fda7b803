"""Datasets are checked row by row at submit time: found, non-empty, every row a Guanaco conversation."""

from __future__ import annotations

import json

import pytest

from services.common.errors import InvalidArgument, NotFound
from services.common.store import open_store
from services.trainer.dataset import chat_format_error, validate_dataset
from tests.fixtures.trainer import guanaco_rows, write_jsonl


@pytest.fixture
def store(tmp_path):
    return open_store(str(tmp_path / "store"))


@pytest.mark.parametrize(
    "text",
    [
        "### Human: Hallo!### Assistant: Hallo, wie kann ich helfen?",  # the canonical layout
        "### Human: Hola ### Assistant: ¡Hola! ### Human: ¿Qué tal? ### Assistant: Bien.",  # OASST spacing, 2 turns
        "  ### Human: hi\n### Assistant: hello\n",
    ],
)
def test_guanaco_conversations_pass(text):
    assert chat_format_error(text) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Hello there ### Assistant: hi", "must start with '### Human:'"),
        ("### Human: only a question", "no '### Assistant:' reply"),
        ("### Human: question ### Assistant:", "is empty"),
        ("### Human: a ### Human: b ### Assistant: c", "roles must alternate"),
        ("plain text", "must start with"),
        (["### Human: a"], "must be a string"),
    ],
)
def test_rows_that_are_not_conversations_say_why(text, reason):
    assert reason in chat_format_error(text)


def test_every_row_of_the_shared_oasst_data_is_a_conversation(shared_dir):
    rows = guanaco_rows(shared_dir, 10_000, max_chars=10**9)
    assert len(rows) > 900
    assert [i for i, row in enumerate(rows) if chat_format_error(row["text"])] == []


def test_a_valid_dataset_yields_its_manifest(store, shared_dir):
    uri = write_jsonl(store, "ds/train.jsonl", guanaco_rows(shared_dir, 5))
    manifest = validate_dataset(uri)
    assert manifest.rows == 5
    assert manifest.sha256 == store.stat("ds/train.jsonl").sha256
    assert manifest.identity == manifest.sha256 and manifest.manifest_sha256 == ""


def test_the_data_flows_manifest_names_the_dataset_when_present(store, shared_dir):
    uri = write_jsonl(store, "ds/train.jsonl", guanaco_rows(shared_dir, 2))
    info = store.put_json("ds/manifest.json", {"mix": "multi-2"})
    assert validate_dataset(uri).identity == info.sha256


def test_missing_dataset_is_not_found_naming_the_field(store):
    with pytest.raises(NotFound) as info:
        validate_dataset(store.uri("nope/train.jsonl"))
    assert info.value.field == "spec.dataset_uri"


def test_empty_dataset_is_refused(store):
    uri = store.put_bytes("ds/empty.jsonl", b"\n\n").uri
    with pytest.raises(InvalidArgument, match="has no rows") as info:
        validate_dataset(uri)
    assert info.value.field == "spec.dataset_uri"


def test_a_bad_row_is_named_by_index_and_line(store):
    good = {"text": "### Human: a ### Assistant: b"}
    lines = [json.dumps(good), "", json.dumps(good), json.dumps({"text": "no markers"})]
    uri = store.put_bytes("ds/bad.jsonl", ("\n".join(lines) + "\n").encode()).uri
    with pytest.raises(InvalidArgument, match=r"row 2 \(line 4\)") as info:
        validate_dataset(uri)
    assert info.value.field == "spec.dataset_uri"


@pytest.mark.parametrize(("line", "reason"), [(b"{not json", "is not JSON"), (b'{"input": "x"}', "no `text` field")])
def test_rows_that_are_not_records_are_refused(store, line, reason):
    uri = store.put_bytes("ds/x.jsonl", line + b"\n").uri
    with pytest.raises(InvalidArgument, match=reason):
        validate_dataset(uri)
