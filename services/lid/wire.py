"""`IdentifyResponse` in its default (nested) form, written straight to protobuf wire bytes.

Callers that know only the server's reflection (another team's tool, grpcurl) ask for the default form:
one `Identification` with one `LanguagePrediction` per text. Building those through the protobuf API
costs about 1.3 µs a text in Python (two message objects and four field sets), 5% of a 20-word
prediction, and unary callers pay it on top of every round trip. Here each label's
`LanguagePrediction` is serialised once (its probability left out), so a text costs a few byte
concatenations: about 0.4 µs. Messages with a status (failed items) still go through the protobuf API.

The bytes are exactly what `IdentifyResponse.SerializeToString()` would give for the same message
(fields in number order, proto3 defaults left out): `tests/unit/lid/test_wire.py` compares them.
`add_to_server` mounts the service with a serializer that passes such bytes through.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import grpc
from polyglot.v1 import lid_pb2

from services.common.errors import InvalidArgument
from services.common.status import item_status

_pack_float = struct.Struct("<f").pack
_PROBABILITY_TAG = b"\x25"  # field 4, fixed32
_PREDICTIONS_TAG = b"\x12"  # Identification field 2, length-delimited
_RESULTS_TAG = b"\x0a"  # IdentifyResponse field 1, length-delimited


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class NestedEncoder:
    """Writes nested `IdentifyResponse`s for one model: label messages serialised once, up front."""

    def __init__(self, label_info: Mapping[str, tuple[str, str]], max_batch: int):
        self._labels = {
            label: lid_pb2.LanguagePrediction(language=language, script=script, raw_label=label).SerializeToString()
            + _PROBABILITY_TAG
            for label, (language, script) in label_info.items()
        }
        # Index 0 is proto3's default, so it is left out, as SerializeToString does.
        self._index = [b""] + [b"\x08" + varint(i) for i in range(1, max_batch + 1)]
        self._length = [varint(n) for n in range(256)]

    def _len(self, n: int) -> bytes:
        return self._length[n] if n < 256 else varint(n)

    def response(self, raw: list, batch_id: str, model: str) -> bytes:
        """The serialised response for `LanguageIdentifier.predict_raw`'s output (request order)."""
        labels, index, length = self._labels, self._index, self._len
        parts: list[bytes] = []
        append = parts.append
        for i, item in enumerate(raw):
            if type(item) is InvalidArgument:
                body = lid_pb2.Identification(index=i, status=item_status(item)).SerializeToString()
            else:
                body = index[i] if i < len(index) else b"\x08" + varint(i)
                for prob, label in item:
                    # fastText's probabilities are exp(log(p + 1e-5)), a hair over 1 for a certain prediction.
                    prediction = labels[label] + _pack_float(prob if prob < 1.0 else 1.0)
                    body += _PREDICTIONS_TAG + length(len(prediction)) + prediction
            append(_RESULTS_TAG + length(len(body)) + body)
        tail = lid_pb2.IdentifyResponse(batch_id=batch_id, model=model).SerializeToString()
        return b"".join(parts) + tail


def _pass_through(response: bytes | lid_pb2.IdentifyResponse) -> bytes:
    return response if type(response) is bytes else response.SerializeToString()


def add_to_server(servicer, server: grpc.aio.Server) -> None:
    """`add_LidServiceServicer_to_server`, except that `Identify` and `IdentifyStream` may answer with
    ready wire bytes (the servicer then writes them, see `LidServicer.wire_bytes`)."""
    from polyglot.v1 import lid_pb2_grpc

    servicer.wire_bytes = True
    handlers = {
        "Identify": grpc.unary_unary_rpc_method_handler(
            servicer.Identify,
            request_deserializer=lid_pb2.IdentifyRequest.FromString,
            response_serializer=_pass_through,
        ),
        "IdentifyStream": grpc.stream_stream_rpc_method_handler(
            servicer.IdentifyStream,
            request_deserializer=lid_pb2.IdentifyRequest.FromString,
            response_serializer=_pass_through,
        ),
    }
    # Everything else exactly as generated: collect the generated handlers through a stand-in server.
    generated: dict = {}

    class _Collect:
        def add_generic_rpc_handlers(self, _handlers) -> None:
            pass

        def add_registered_method_handlers(self, _name, method_handlers) -> None:
            generated.update(method_handlers)

    lid_pb2_grpc.add_LidServiceServicer_to_server(servicer, _Collect())
    merged = {**generated, **handlers}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("polyglot.v1.LidService", merged),))
    server.add_registered_method_handlers("polyglot.v1.LidService", merged)
