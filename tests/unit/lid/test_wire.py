"""The hand-written nested `IdentifyResponse` bytes equal what the protobuf API builds for the same reply."""

from __future__ import annotations

from polyglot.v1 import lid_pb2

from services.common.errors import InvalidArgument
from services.common.status import item_status
from services.lid.wire import NestedEncoder, varint


def built_by_protobuf(lid, raw, batch_id: str, model: str) -> bytes:
    response = lid_pb2.IdentifyResponse(batch_id=batch_id, model=model)
    for i, item in enumerate(raw):
        if type(item) is InvalidArgument:
            response.results.add(index=i, status=item_status(item))
            continue
        result = response.results.add(index=i)
        for prob, label in item:
            language, script = lid.label_info[label]
            result.predictions.add(language=language, script=script, raw_label=label, probability=min(prob, 1.0))
    return response.SerializeToString()


def test_varint_matches_protobuf():
    for value in (0, 1, 127, 128, 300, 4096, 2**31 - 1):
        encoded = lid_pb2.Identification(index=value).SerializeToString()
        assert encoded == (b"\x08" + varint(value) if value else b"")


def test_nested_bytes_equal_the_protobuf_api(lid_identifier):
    texts = ["Hallo Welt, wie geht es dir?", "", "今天天气很好", b"\xff bad", "The weather is lovely"] * 60
    encoder = NestedEncoder(lid_identifier.label_info, lid_identifier.max_batch)
    for k in (1, 3):
        raw = lid_identifier.predict_raw(texts, k=k)
        wire = encoder.response(raw, "batch-7", "lid.176.ftz")
        assert wire == built_by_protobuf(lid_identifier, raw, "batch-7", "lid.176.ftz")
    parsed = lid_pb2.IdentifyResponse.FromString(encoder.response(lid_identifier.predict_raw(texts[:2]), "", "m"))
    assert parsed.results[0].predictions[0].language == "de" and parsed.results[1].status.field == "texts[1]"
