"""Fuzz the lid service's gRPC API: any input gives OK or INVALID_ARGUMENT (per call or per item), never
INTERNAL, never a hang (every call has a deadline). 400 + 150 + 60 generated cases.

The server runs with small limits (16 texts, 4096 bytes) so that "too many" and "too long" are cheap to hit.
"""

from __future__ import annotations

import math
import struct

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polyglot.v1 import lid_pb2, lid_pb2_grpc

from services.lid.core import LanguageIdentifier
from services.lid.text import is_blank, prepare
from tests.fixtures.lid import running_lid

MAX_BATCH, MAX_BYTES = 16, 4096
OK, INVALID = 0, grpc.StatusCode.INVALID_ARGUMENT.value[0]


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


any_char = st.characters(codec=None, categories=None)  # includes controls, surrogates, unassigned
unicode_text = st.text(any_char, max_size=200)
long_text = st.builds(lambda s, n: s * n, st.text(any_char, min_size=1, max_size=4), st.integers(500, 3000))
markers = st.sampled_from(["### Human: ", "### Assistant:", "\n", "\x00", "\r\n", "\u2028", " "])
guanaco = st.lists(st.one_of(markers, st.text(max_size=20)), max_size=8).map("".join)


def to_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


items = st.one_of(
    unicode_text.map(to_bytes),
    st.binary(max_size=300),  # mostly invalid UTF-8
    long_text.map(to_bytes),
    guanaco.map(to_bytes),
    st.sampled_from([b"", b" ", b"\n\t", b"\x00", b"Das ist ein deutscher Satz."]),
)


def float32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def expected_item_code(data: bytes, strip: bool) -> int:
    if len(data) > MAX_BYTES:
        return INVALID
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return INVALID
    return INVALID if is_blank(prepare(text, strip)) else OK


@pytest.fixture(scope="module")
def stub():
    lid = LanguageIdentifier(max_batch=MAX_BATCH, max_text_bytes=MAX_BYTES)
    with running_lid(lid) as address, grpc.insecure_channel(address) as channel:
        yield lid_pb2_grpc.LidServiceStub(channel)


def items_of(request: lid_pb2.IdentifyRequest, reply: lid_pb2.IdentifyResponse) -> list[tuple[int, str, list]]:
    """(status code, status field, probabilities) per text, from the nested or the compact form."""
    if not request.compact:
        assert [r.index for r in reply.results] == list(range(len(request.texts)))
        return [(r.status.code, r.status.field, [p.probability for p in r.predictions]) for r in reply.results]
    errors = {r.index: r.status for r in reply.results}
    counts, probs = list(reply.compact.counts), list(reply.compact.probabilities)
    assert len(counts) == len(request.texts) and len(probs) == len(reply.compact.label_ids) == sum(counts)
    assert all(0 <= j < len(reply.compact.labels) for j in reply.compact.label_ids)
    offsets = [sum(counts[:i]) for i in range(len(counts))]
    return [
        (errors[i].code, errors[i].field, []) if i in errors else (OK, "", probs[offsets[i] : offsets[i] + n])
        for i, n in enumerate(counts)
    ]


def check_identify_reply(request: lid_pb2.IdentifyRequest, call) -> None:
    threshold = float32(request.threshold)
    call_invalid = request.k < 0 or math.isnan(threshold) or not 0 <= threshold <= 1 or len(request.texts) > MAX_BATCH
    try:
        reply = call()
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{exc.code()}: {exc.details()}"
        assert call_invalid, exc.details()
        return
    assert not call_invalid
    for i, (data, (code, field, probs)) in enumerate(zip(request.texts, items_of(request, reply), strict=True)):
        assert code == expected_item_code(data, request.strip_role_markers), (code, field)
        if code == INVALID:
            assert field == f"texts[{i}]" and not probs
        assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
        assert len(probs) <= max(1, request.k)


@pytest.mark.slow
@fuzz(400)
@given(
    texts=st.lists(items, max_size=MAX_BATCH + 2),
    k=st.integers(-2, 200),
    threshold=st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0.0, 1.0, float("nan"), float("inf")])),
    strip=st.booleans(),
    compact=st.booleans(),
)
def test_identify_fuzz(stub, texts, k, threshold, strip, compact):
    request = lid_pb2.IdentifyRequest(texts=texts, k=k, threshold=threshold, strip_role_markers=strip, compact=compact)
    check_identify_reply(request, lambda: stub.Identify(request, timeout=20))


@pytest.mark.slow
@fuzz(150)
@given(
    pairs=st.lists(
        st.tuples(items, st.one_of(st.sampled_from(["de", "en", "zh", "deu_Latn", "", "xx"]), st.text(max_size=8))),
        max_size=MAX_BATCH + 2,
    ),
    min_tokens=st.integers(-2, 12),
    strip=st.booleans(),
)
def test_check_language_fuzz(stub, pairs, min_tokens, strip):
    request = lid_pb2.CheckLanguageRequest(
        items=[lid_pb2.LanguageCheck(text=text, expected_language=lang) for text, lang in pairs],
        min_line_tokens=min_tokens,
        strip_role_markers=strip,
    )
    try:
        reply = stub.CheckLanguage(request, timeout=20)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{exc.code()}: {exc.details()}"
        assert min_tokens < 0 or len(pairs) > MAX_BATCH, exc.details()
        return
    assert [r.index for r in reply.results] == list(range(len(pairs)))
    for result in reply.results:
        assert result.status.code in (OK, INVALID)
        assert 0 <= result.lines_passed <= result.lines_checked and 0 <= result.line_pass_rate <= 1
        if result.status.code == INVALID:
            assert result.status.field.startswith(f"items[{result.index}].")


@pytest.mark.slow
@fuzz(60)
@given(
    batches=st.lists(st.lists(items, max_size=MAX_BATCH), min_size=1, max_size=5),
    k=st.integers(0, 5),
    compact=st.booleans(),
)
def test_identify_stream_fuzz(stub, batches, k, compact):
    requests = [lid_pb2.IdentifyRequest(texts=b, k=k, batch_id=str(i), compact=compact) for i, b in enumerate(batches)]
    replies = list(stub.IdentifyStream(iter(requests), timeout=20))
    assert [r.batch_id for r in replies] == [str(i) for i in range(len(batches))]
    for request, reply in zip(requests, replies, strict=True):
        check_identify_reply(request, lambda reply=reply: reply)
