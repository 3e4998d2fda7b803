"""A real `polyglot-serve lid` process with the LCB word list: every lid.176 label is an accepted expected
language, unknown codes fail naming `items[i].expected_language`, the `lcb` metric answers as in-process,
and a client built from reflection alone gets the nested reply the wire encoder writes."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from polyglot.v1 import lid_pb2, lid_pb2_grpc

from services.common.errors import InvalidArgument
from services.lid.client import LidClient
from services.lid.core import LanguageIdentifier
from tests.integration.test_lid_cli import serve, stop, wait_until_serving

REPLIES = [
    ("Das Wetter ist heute wirklich sehr schön\nThe weather is really lovely today in the park", "de"),
    ("Это очень хороший ответ на ваш вопрос про computer", "ru"),
    ("今天天气很好我们去公园散步吧。\nQ: What else is there to say about it?", "zh"),
    ("Cuaca hari ini sangat cerah dan kami pergi ke taman", "id"),
    ("오늘은 날씨가 정말 좋아서 우리는 공원에 산책하러 갑니다", "ko"),
]


@pytest.fixture(scope="module")
def lid_process(shared_dir):
    words = shared_dir / "data" / "lcb" / "words"
    proc, address = serve(env={"POLYGLOT_LID_WORD_LIST": str(words)})
    try:
        wait_until_serving(proc, address)
        yield address, words
    finally:
        stop(proc)


def test_every_model_label_is_an_expected_language(lid_process):
    address, _ = lid_process
    with LidClient(address, timeout=60) as client:
        info = client.model_info()
        assert len(info.languages) == info.num_labels == 176 and info.word_list.endswith("words")
        text = "Das Wetter ist heute wirklich sehr schön"
        for metric in ("share", "lcb"):
            # Each label as the model spells it, and the canonical code it maps to.
            items = [(text, m.raw_label.removeprefix("__label__")) for m in info.languages]
            items += [(text, m.language) for m in info.languages]
            results = client.check_language(items, metric=metric)
            assert [r.error for r in results if r.error] == []
            assert sum(r.passed for r in results) == 2  # `de` both ways
    codes = {m.raw_label: m.language for m in info.languages}
    assert codes["__label__da"] == "da" and codes["__label__pl"] == "pl" and codes["__label__als"] == "gsw"


def test_unknown_codes_are_invalid_argument_naming_the_item(lid_process):
    address, _ = lid_process
    with grpc.insecure_channel(address) as channel:
        stub = lid_pb2_grpc.LidServiceStub(channel)
        items = [
            lid_pb2.LanguageCheck(string="Hallo Welt wie geht es dir", expected_language=code)
            for code in ("de", "xx", "")
        ]
        for metric in ("", "lcb"):
            reply = stub.CheckLanguage(lid_pb2.CheckLanguageRequest(items=items, metric=metric), timeout=30)
            statuses = [(r.status.code, r.status.field) for r in reply.results]
            assert statuses == [(0, ""), (3, "items[1].expected_language"), (3, "items[2].expected_language")]
        with pytest.raises(grpc.RpcError) as caught:
            stub.CheckLanguage(lid_pb2.CheckLanguageRequest(items=items[:1], metric="lpr"), timeout=30)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "metric" in caught.value.details()


def test_lcb_through_the_service_equals_in_process(lid_process):
    address, words = lid_process
    local = LanguageIdentifier(word_list=words).check_language(REPLIES, metric="lcb")
    with LidClient(address, timeout=60) as client:
        remote = client.check_language(REPLIES, metric="lcb")
        pipelined = [
            c for batch in client.check_language_batches([REPLIES[:2], REPLIES[2:]], metric="lcb") for c in batch
        ]
        with pytest.raises(InvalidArgument):
            client.check_language(REPLIES, metric="nope")
    fields = ("line_pass", "word_pass", "word_note", "lines_checked", "lines_passed", "passed", "metric")
    for r, loc in zip(remote, local, strict=True):
        assert [getattr(r, f) for f in fields] == [getattr(loc, f) for f in fields]
        assert [(v.text, v.language, v.raw_label, v.passed) for v in r.lines] == [
            (v.text, v.language, v.raw_label, v.passed) for v in loc.lines
        ]
        assert [v.probability for v in r.lines] == pytest.approx([v.probability for v in loc.lines], abs=1e-6)
    assert [(c.index, c.line_pass) for c in pipelined] == [(0, False), (1, True), (0, True), (1, True), (2, True)]
    assert [r.line_pass for r in remote] == [False, True, True, True, True]
    assert remote[1].word_pass is False and remote[2].word_pass is True  # "computer" is an English word
    assert [r.lines[0].language for r in remote[3:]] == ["id", "ko"]


def test_reflection_only_client_gets_the_nested_reply(lid_process, lid_identifier):
    address, _ = lid_process
    texts = ["Hallo Welt, wie geht es dir?", "", "Dette er en dansk sætning"]
    with grpc.insecure_channel(address) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method = pool.FindServiceByName("polyglot.v1.LidService").FindMethodByName("Identify")
        request_class = message_factory.GetMessageClass(method.input_type)
        reply_class = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            "/polyglot.v1.LidService/Identify",
            request_serializer=request_class.SerializeToString,
            response_deserializer=reply_class.FromString,
        )
        reply = call(request_class(strings=texts, k=2, batch_id="b1"), timeout=30)
    local = lid_identifier.identify(texts, k=2)
    assert reply.batch_id == "b1" and reply.model == "lid.176.ftz"
    assert [[p.raw_label for p in r.predictions] for r in reply.results] == [
        [p.raw_label for p in r.predictions] for r in local
    ]
    assert reply.results[2].predictions[0].language == "da" and reply.results[1].status.field == "strings[1]"
