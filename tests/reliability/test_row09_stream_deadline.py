"""Row 9: a Generate stream whose client never read pinned its adapter slot with no server deadline, and a
1 MB `request_id` was echoed in every result. Reproduced before the fix against the real generator (tiny
Llama, hf): a client that opened a stream on an adapter and stopped reading left the server's write waiting
on HTTP/2 flow control for as long as the connection stayed open, the adapter pinned all that time (not
evictable, not unloadable); a megabyte `request_id` was accepted and copied into every result, so a few
results filled the client's window.

Remedies (services/generator/servicer.py, limits.py, settings.py): each result must be taken by the client
within `stream_stall_seconds` (default 60 s), or the call ends with DEADLINE_EXCEEDED and its adapter and
queued rows are freed; `request_id` is at most `max_request_id_bytes` (256), or INVALID_ARGUMENT naming it.
The reader here stops at once: its receive window is one byte (`grpc.http2.lookahead_bytes`) with window
growth off, so the very first result waits, as a stalled reader's does once its window is full.

    .venv/bin/python -m pytest tests/reliability/test_row09_stream_deadline.py -q
"""

from __future__ import annotations

import dataclasses
import time

import grpc
import pytest
from polyglot.v1 import generator_pb2 as pb
from polyglot.v1 import generator_pb2_grpc as pb_grpc

from services.common import errors
from services.generator.client import GeneratorClient

STALL_SECONDS = 1.0
STALLED_READER = [("grpc.http2.lookahead_bytes", 1), ("grpc.http2.bdp_probe", 0)]


@pytest.fixture
def short_stall_limit(generator_service):
    """The running server's stall limit lowered for the test (restored after)."""
    generator = generator_service.generator
    saved = getattr(generator, "limits", None)
    if saved is not None:
        generator.limits = dataclasses.replace(saved, stream_stall_seconds=STALL_SECONDS)
    try:
        yield
    finally:
        if saved is not None:
            generator.limits = saved


def _pins(generator, uri: str) -> int:
    return sum(a.pins for a in generator.adapters.loaded() if uri in {a.uri, *getattr(a, "spellings", ())})


def _wait_for(condition, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_reader_that_stalls_is_cut_off_and_its_adapter_slot_freed(generator_service, tiny_lora_uri,
                                                                    short_stall_limit):  # fmt: skip
    generator = generator_service.generator
    request = pb.GenerateRequest(prompts=["Hello"] * 4, adapter=tiny_lora_uri, request_id="stalled")
    request.sampling.max_tokens = 4
    with grpc.insecure_channel(generator_service.address, options=STALLED_READER) as channel:
        call = pb_grpc.GeneratorServiceStub(channel).Generate(request, timeout=120)  # started, never read
        try:
            assert _wait_for(lambda: _pins(generator, tiny_lora_uri) > 0, within=30), "the stream never started"
            # Freed by the server, with the client still connected and silent.
            assert _wait_for(lambda: _pins(generator, tiny_lora_uri) == 0, within=STALL_SECONDS + 20)
        finally:
            call.cancel()
    with GeneratorClient(generator_service.address, timeout=60) as client:  # the slot is usable again
        [completion] = client.generate_all(["Hello"], adapter=tiny_lora_uri, max_tokens=2)
        assert completion.error is None


def test_a_megabyte_request_id_is_invalid_argument(generator_client):
    with pytest.raises(errors.InvalidArgument) as info:
        generator_client.generate_all(["Hello"], max_tokens=2, request_id="r" * 1_000_000)
    assert str(info.value).startswith("request_id: ")
    with pytest.raises(errors.InvalidArgument) as info:
        generator_client.score([("Hello", " world")], request_id="r" * 1_000_000)
    assert str(info.value).startswith("request_id: ")
