"""The lid service over real gRPC on loopback: results equal the in-process core, errors map per item."""

from __future__ import annotations

import itertools
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from polyglot.v1 import lid_pb2, lid_pb2_grpc

from services.common.errors import InvalidArgument
from services.lid.client import LidClient
from services.lid.core import LanguageIdentifier
from services.lid.servicer import SLICE_BYTES
from tests.fixtures.lid import running_lid

TEXTS = [
    "Das Wetter ist heute sehr schön, wir gehen in den Park.",
    "The weather is lovely today, so we are going to the park.",
    "今天天气很好，我们去公园散步吧。",
    "Сегодня прекрасная погода,\nмы идём в парк.",
    "आज मौसम बहुत अच्छा है।",
    "### Human: ¿Me ayudas? ### Assistant: Claro que sí.",
]


@pytest.fixture(scope="module")
def small_service():
    """Limits small enough to hit: 8 texts per call, 1000 bytes per text."""
    lid = LanguageIdentifier(max_batch=8, max_text_bytes=1000)
    with running_lid(lid) as address, LidClient(address, timeout=30) as client:
        yield client


def assert_same(remote, local):
    assert len(remote) == len(local)
    for r, loc in zip(remote, local, strict=True):
        assert (r.index, r.error, r.field) == (loc.index, loc.error, loc.field)
        assert [(p.language, p.script, p.raw_label) for p in r.predictions] == [
            (p.language, p.script, p.raw_label) for p in loc.predictions
        ]
        assert [p.probability for p in r.predictions] == pytest.approx(
            [p.probability for p in loc.predictions], rel=1e-6
        )


def test_identify_equals_in_process(lid_client, lid_identifier):
    for options in ({}, {"k": 3}, {"k": 5, "threshold": 0.01}, {"strip_role_markers": True}):
        assert_same(lid_client.identify(TEXTS, **options), lid_identifier.identify(TEXTS, **options))
    assert lid_client.identify(["Hallo Welt, wie geht es dir?"])[0].predictions[0].language == "de"


def test_a_batch_computed_in_slices_names_items_by_their_place_in_the_whole_batch(lid_client, lid_identifier):
    # ~130 K characters: several slices of SLICE_BYTES, with bad items in the first and the last one.
    texts: list = [TEXTS[i % len(TEXTS)] * 8 for i in range(400)]
    texts[3], texts[398] = "", b"\xff bad"
    assert sum(len(t) for t in texts) > 3 * SLICE_BYTES
    remote = lid_client.identify(texts, k=2)
    assert_same(remote, lid_identifier.identify(texts, k=2))
    assert [r.field for r in remote if r.error] == ["texts[3]", "texts[398]"]
    checks = lid_client.check_language([(t, "de") for t in texts])
    assert [c.index for c in checks] == list(range(400))
    assert [c.field for c in checks if c.error] == ["items[3].text", "items[398].text"]


def test_bad_items_fail_alone_through_the_service(small_service):
    texts = ["Bonjour à tous", "", " \n\t", b"\xc3\x28 broken", "x" * 1001, "\ud800 lone", "Guten Tag zusammen"]
    results = small_service.identify(texts)
    assert [r.field for r in results] == [None, "texts[1]", "texts[2]", "texts[3]", "texts[4]", "texts[5]", None]
    assert results[3].error == "texts[3]: invalid UTF-8 at byte 0"
    assert results[4].error == "texts[4]: 1001 bytes, over the limit of 1000"
    assert results[5].error == "texts[5]: invalid UTF-8 at byte 0"  # the client sends the surrogate as bytes
    assert (results[0].language, results[6].language) == ("fr", "de")


def test_client_refuses_items_that_are_not_text(small_service):
    with pytest.raises(InvalidArgument) as err:
        small_service.identify(["fine", 42])
    assert err.value.field == "texts[1]"


def test_call_level_errors_are_invalid_argument(small_service):
    with pytest.raises(InvalidArgument, match="texts: 9 items"):
        small_service.identify(["a b"] * 9)
    with pytest.raises(InvalidArgument, match="^k: "):
        small_service.identify(["a b"], k=-2)
    with pytest.raises(InvalidArgument, match="^threshold: "):
        small_service.identify(["a b"], threshold=2.0)


def test_stream_answers_each_batch_in_order(lid_client, lid_identifier):
    batches = [TEXTS[i % len(TEXTS) :] + TEXTS[: i % 3] for i in range(40)] + [["", "Hola amigos, ¿qué tal?"]]
    streamed = list(lid_client.identify_stream(batches, k=2))
    assert len(streamed) == len(batches)
    for batch, results in zip(batches, streamed, strict=True):
        assert_same(results, lid_identifier.identify(batch, k=2))


def test_nested_and_compact_forms_carry_the_same_answers(lid_service, lid_client):
    texts = [t.encode() for t in TEXTS] + [b"", b"\xff", b"a b c"]
    with grpc.insecure_channel(lid_service) as channel:
        stub = lid_pb2_grpc.LidServiceStub(channel)
        nested = stub.Identify(lid_pb2.IdentifyRequest(texts=texts, k=3, threshold=0.15), timeout=30)
        compact = stub.Identify(lid_pb2.IdentifyRequest(texts=texts, k=3, threshold=0.15, compact=True), timeout=30)
    assert not nested.HasField("compact") and len(nested.results) == len(texts)
    assert [r.index for r in compact.results] == [6, 7]  # only the failures, with their status
    assert [r.status for r in compact.results] == [nested.results[6].status, nested.results[7].status]
    assert list(compact.compact.counts) == [len(r.predictions) for r in nested.results]
    assert nested.results[8].predictions == [] and not nested.results[8].HasField("status")  # none above 0.15
    flat = [p for r in nested.results for p in r.predictions]
    labels = compact.compact.labels
    assert [labels[j].raw_label for j in compact.compact.label_ids] == [p.raw_label for p in flat]
    assert [labels[j].language for j in compact.compact.label_ids] == [p.language for p in flat]
    assert list(compact.compact.probabilities) == [p.probability for p in flat]
    assert len({label.raw_label for label in labels}) == len(labels)  # each label once
    client = lid_client.identify(texts, k=3, threshold=0.15)
    assert [[p.raw_label for p in r.predictions] for r in client] == [
        [p.raw_label for p in r.predictions] for r in nested.results
    ]


def test_stream_at_message_level_echoes_batch_ids(lid_service):
    with grpc.insecure_channel(lid_service) as channel:
        stub = lid_pb2_grpc.LidServiceStub(channel)
        requests = [lid_pb2.IdentifyRequest(texts=[b"hello there my friend"], batch_id=f"b{i}") for i in range(5)]
        replies = list(stub.IdentifyStream(iter(requests), timeout=30))
    assert [r.batch_id for r in replies] == [f"b{i}" for i in range(5)]
    assert {r.model for r in replies} == {"lid.176.ftz"}


def test_stream_pulls_batches_lazily_and_stops_cleanly(lid_client):
    pulled = itertools.count()

    def endless():  # a pipeline that could push forever
        batch = [TEXTS[0] * 20] * 256  # ~280 KB per message: flow control bites after a few
        while True:
            next(pulled)
            yield batch

    stream = lid_client.identify_stream(endless())
    for _ in range(5):
        assert len(next(stream)) == 256
    stream.close()  # cancels the call
    in_flight = next(pulled) - 5
    assert in_flight < 64, f"{in_flight} batches were read ahead: memory would not be bounded"
    assert lid_client.identify(["still serving"])[0].error is None


def test_stream_with_an_oversized_batch_fails_naming_it(small_service):
    with pytest.raises(InvalidArgument, match=r"requests\[1\]\.texts: 9 items"):
        list(small_service.identify_stream([["a b"], ["a b"] * 9, ["a b"]]))


def test_check_language_equals_in_process(lid_client, lid_identifier):
    items = [
        ("Das ist der erste Satz dieser Antwort.\nThis line slipped into English, sadly.\nKurz.", "de"),
        ("今天天气很好，我们去公园散步吧。\n明天我们一起去图书馆看书。", "zh"),
        ("hello", "xx"),
        (b"\xff\xfe", "de"),
    ]
    remote = lid_client.check_language(items)
    local = lid_identifier.check_language(items)
    for r, loc in zip(remote, local, strict=True):
        assert (r.index, r.lines_checked, r.lines_passed, r.passed, r.error, r.field) == (
            loc.index,
            loc.lines_checked,
            loc.lines_passed,
            loc.passed,
            loc.error,
            loc.field,
        )
        assert r.line_pass_rate == pytest.approx(loc.line_pass_rate, rel=1e-6)
        assert (r.detected is None) == (loc.detected is None)
    assert remote[0].line_pass_rate == pytest.approx(0.5) and remote[2].field == "items[2].expected_language"
    assert remote[3].error == "items[3].text: invalid UTF-8 at byte 0"
    with pytest.raises(InvalidArgument, match="min_line_tokens"):
        lid_client.check_language([("a", "de")], min_line_tokens=-1)


def test_model_info_and_health(lid_client, lid_identifier):
    info = lid_client.model_info()
    assert info == lid_identifier.model_info()
    assert lid_client.health("polyglot.v1.LidService") == "SERVING"


def test_health_answers_while_a_large_batch_is_computed(lid_service):
    big = [" ".join([TEXTS[0]] * 6)] * 4096
    done = threading.Event()

    def heavy():
        with LidClient(lid_service, timeout=120) as client:
            client.identify(big)
        done.set()

    worker = threading.Thread(target=heavy)
    worker.start()
    checks = 0
    with grpc.insecure_channel(lid_service) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while not done.is_set() and checks < 20:
            reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            checks += 1
    worker.join(120)
    assert done.is_set() and checks >= 1


def test_concurrent_clients_get_their_own_answers(lid_service, lid_identifier):
    expected = {i: lid_identifier.identify(TEXTS[i:] + TEXTS[:i]) for i in range(len(TEXTS))}
    failures: list[str] = []

    def worker(i: int) -> None:
        with LidClient(lid_service, timeout=60) as client:
            for _ in range(5):
                got = client.identify(TEXTS[i:] + TEXTS[:i])
                if [r.language for r in got] != [r.language for r in expected[i]]:
                    failures.append(f"client {i}")

    threads = [threading.Thread(target=worker, args=(i % len(TEXTS),)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures
