"""Texts as `strings` (what JSON callers such as grpcurl send) answer as the same texts as `bytes` do."""

from __future__ import annotations

import grpc
import pytest
from polyglot.v1 import lid_pb2, lid_pb2_grpc

from tests.integration.test_lid_service import TEXTS


@pytest.fixture(scope="module")
def stub(lid_service):
    with grpc.insecure_channel(lid_service) as channel:
        yield lid_pb2_grpc.LidServiceStub(channel)


@pytest.mark.parametrize("compact", [False, True])
def test_strings_get_the_same_answers_as_bytes(stub, compact):
    texts = [*TEXTS, "", "a b c"]
    options = {"k": 3, "threshold": 0.15, "strip_role_markers": True, "compact": compact}
    as_bytes = stub.Identify(lid_pb2.IdentifyRequest(texts=[t.encode() for t in texts], **options), timeout=30)
    as_strings = stub.Identify(lid_pb2.IdentifyRequest(strings=texts, **options), timeout=30)
    assert as_strings.compact == as_bytes.compact
    assert [r.predictions for r in as_strings.results] == [r.predictions for r in as_bytes.results]
    # Item errors name the field the caller used.
    failed = [r for r in as_strings.results if r.status.code]
    assert [(r.index, r.status.field) for r in failed] == [(len(TEXTS), f"strings[{len(TEXTS)}]")]
    assert failed[0].status.message == next(r for r in as_bytes.results if r.status.code).status.message


def test_strings_over_a_stream(stub):
    requests = [lid_pb2.IdentifyRequest(strings=[text], batch_id=str(i)) for i, text in enumerate(TEXTS)]
    replies = list(stub.IdentifyStream(iter(requests), timeout=30))
    assert [r.results[0].predictions[0].language for r in replies] == ["de", "en", "zh", "ru", "hi", "es"]


def test_texts_and_strings_together_are_refused_naming_the_field(stub):
    both = lid_pb2.IdentifyRequest(texts=[b"Hallo Welt"], strings=["Hallo Welt"])
    with pytest.raises(grpc.RpcError) as raised:
        stub.Identify(both, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith("strings: ")
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.IdentifyStream(iter([lid_pb2.IdentifyRequest(strings=["Hallo Welt"]), both]), timeout=30))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith("requests[1].strings: ")


def test_check_language_takes_strings_per_item(stub):
    text = "Das Wetter ist heute sehr schön.\nWir gehen später in den Park spazieren."
    items = [
        lid_pb2.LanguageCheck(text=text.encode(), expected_language="de"),
        lid_pb2.LanguageCheck(string=text, expected_language="de"),
        lid_pb2.LanguageCheck(string="   ", expected_language="de"),
        lid_pb2.LanguageCheck(text=text.encode(), string=text, expected_language="de"),
    ]
    results = stub.CheckLanguage(lid_pb2.CheckLanguageRequest(items=items), timeout=30).results
    assert results[0].passed and results[0].lines_checked == 2
    assert (results[1].line_pass_rate, results[1].detected) == (results[0].line_pass_rate, results[0].detected)
    assert [(r.status.code, r.status.field) for r in results[2:]] == [
        (grpc.StatusCode.INVALID_ARGUMENT.value[0], "items[2].string"),
        (grpc.StatusCode.INVALID_ARGUMENT.value[0], "items[3].string"),
    ]
    assert "not both" in results[3].status.message
