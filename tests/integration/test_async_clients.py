"""The asyncio twins of the typed clients against real services on loopback: the same records as the
synchronous clients, the same domain errors, and the shared retry policy."""

from __future__ import annotations

import socket
import time

import pytest

from services.common.errors import InvalidArgument, NotFound, Unavailable
from services.generator.client import AsyncGeneratorClient
from services.judge.client import AsyncJudgeClient
from services.judge.records import GradeItem, Outcome
from services.lid.client import AsyncLidClient, identify_request
from services.lid.core import Identification
from services.trainer.client import AsyncTrainerClient
from tests.fixtures.judge import grade_reply, running_judge

GREEDY = {"temperature": 0.0, "seed": 0}


async def test_async_lid_client_gives_the_sync_clients_records(lid_service, lid_client):
    texts = ["Guten Morgen, wie geht es Ihnen heute?", "   ", "Bonjour tout le monde, comment allez-vous ?"]
    async with AsyncLidClient(lid_service) as lid:
        got = await lid.identify(texts)
        assert got == lid_client.identify(texts)
        assert got[0].language == "de" and got[1].field == "texts[1]" and got[1].error.startswith("texts[1]: ")
        checks = await lid.check_language([(texts[0], "de"), (texts[2], "xx")])
        assert checks[0].passed and checks[1].field == "items[1].expected_language"
        assert await lid.model_info() == lid_client.model_info()

        async def batches():
            yield texts[:1]
            yield texts[2:]

        streamed = [results async for results in lid.identify_stream(batches())]
        assert [[r.language for r in batch] for batch in streamed] == [["de"], ["fr"]]
        assert all(isinstance(r, Identification) for batch in streamed for r in batch)
        with pytest.raises(InvalidArgument):
            await lid.identify(["x"], k=-1)


async def test_async_generator_client_gives_the_sync_clients_records(generator_service, generator_client):
    prompts = ["The capital of France is", "", "Hello"]
    async with AsyncGeneratorClient(generator_service.address, timeout=300) as gen:
        got = await gen.generate_all(prompts, max_tokens=4, **GREEDY)
        assert got == generator_client.generate_all(prompts, max_tokens=4, **GREEDY)
        assert [c.index for c in got] == [0, 1, 2] and got[0].error is None and got[0].text
        bad = got[1]
        assert (bad.error.code, bad.error.field, bad.finish_reason) == ("INVALID_ARGUMENT", "prompts[1]", "error")
        scores = await gen.score([("Hi", " there"), ("Hi", "")])
        assert scores[0].error is None and scores[0].num_tokens > 0 and scores[1].error.field == "items[1].continuation"
        listed = await gen.list_models()
        assert listed == generator_client.list_models() and listed.models[0].kind == "base"
        with pytest.raises(NotFound, match="adapter") as err:
            await gen.generate_all(["Hi"], max_tokens=2, adapter="no-such-adapter")
        assert err.value.grpc_code.name == "NOT_FOUND"


async def test_async_judge_client_grades(openai_server, judge_settings_factory):
    openai_server.script("", grade_reply(5))
    settings = judge_settings_factory(openai_server.base_url)
    with running_judge(settings) as address:
        async with AsyncJudgeClient(address, timeout=60) as judge:
            item = GradeItem("Question?", "A helpful English answer.", "en", id="a", response_language="en")
            graded = await judge.grade([item], run_id="async")
            assert [(r.outcome, r.score) for r in graded.records] == [(Outcome.GRADED, 5)]
            assert [r.id async for r in judge.grade_stream([item], run_id="async")] == ["a"]
            assert (await judge.usage("async")).requests == 1  # the stream was answered from the cache
            with pytest.raises(InvalidArgument) as err:
                await judge.grade([GradeItem("Q?", "   ", "en")])
            assert "items[0].response" in str(err.value)


async def test_async_trainer_client_maps_errors_and_lists(trainer_service, tmp_path):
    with trainer_service() as address:
        async with AsyncTrainerClient(address, timeout=60) as trainer:
            with pytest.raises(InvalidArgument, match="spec.hyperparameters.learning_rate"):
                await trainer.submit(
                    base_model="m",
                    dataset_uri=(tmp_path / "d.jsonl").as_uri(),
                    output_uri=(tmp_path / "o").as_uri(),
                    training={"learning_rate": 0.0},
                )
            assert await trainer.list() == []
            with pytest.raises(NotFound):
                await trainer.get("no-such-job")


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def test_async_client_retries_transient_codes_then_raises_the_domain_error():
    address = _closed_port()  # nothing listens: every attempt is UNAVAILABLE
    async with AsyncLidClient(address, timeout=2, retries=3) as lid:
        started = time.monotonic()
        with pytest.raises(Unavailable) as err:
            await lid.identify(["hallo"])
        assert time.monotonic() - started >= 0.2 + 0.4  # the policy's two back-offs: three attempts
        assert err.value.grpc_code.name == "UNAVAILABLE"
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await lid.call("Identify", identify_request(["hallo"]), retry_transient=False)
        assert time.monotonic() - started < 0.2  # one attempt, no back-off
