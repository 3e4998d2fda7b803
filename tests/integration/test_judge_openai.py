"""The judge drives the real `openai` client against a scripted OpenAI-compatible server on 127.0.0.1.

Acceptance (issue 6): retries work (429 with Retry-After, 500, timeouts); a second run of the same batch
makes zero HTTP requests (the server's count); the language gate makes no request for a wrong-language
reply, on real OASST text from ../shared; unparsable replies are recorded as such. Also: what is sent
(temperature 0, fixed seed, JSON mode), bounded concurrency, the usage account, and that the API key
never reaches a record, the cache or a log line.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from services.common.errors import Unavailable
from services.judge.records import REPAIR_SEPARATOR, GradeItem, GradeJob, Outcome
from services.judge.translation import TranslateJob
from tests.fixtures.judge import TEST_API_KEY, Error, Raw, Reply, grade_reply, oasst_replies


def en_item(n: int, **kw) -> GradeItem:
    return GradeItem(prompt=f"question {n}", response=f"an English answer number {n}", target_language="en",
                     id=f"q{n}", response_language="en", **kw)  # fmt: skip


async def test_batch_then_rerun_makes_zero_requests(openai_server, make_judge):
    items = [en_item(n) for n in range(12)]
    first = await make_judge(openai_server.base_url).grade(GradeJob(items, run_id="rerun"))
    assert openai_server.count == 12
    assert [r.outcome for r in first.records] == [Outcome.GRADED] * 12
    assert [r.score for r in first.records] == [4] * 12 and not any(r.cached for r in first.records)
    assert first.usage.requests == 12 and first.usage.cached == 0

    # A new judge on the same store: a rerun of the study step, e.g. after a crash.
    second = await make_judge(openai_server.base_url).grade(GradeJob(items, run_id="rerun"))
    assert openai_server.count == 12  # zero HTTP requests
    assert all(r.cached for r in second.records)
    assert [(r.score, r.reasoning, r.raw_reply) for r in second.records] == [
        (r.score, r.reasoning, r.raw_reply) for r in first.records
    ]
    assert second.usage.requests == 0 and second.usage.cached == 12


async def test_429_with_retry_after_and_500_are_retried(openai_server, make_judge):
    openai_server.script("question 1", Error(429, retry_after=0.4), Error(500), grade_reply(6))
    judge = make_judge(openai_server.base_url, backoff_initial=0.01)
    graded = await judge.grade(GradeJob([en_item(1)]))
    record = graded.records[0]
    assert (record.outcome, record.score) == (Outcome.GRADED, 6)
    arrivals = [r.at for r in openai_server.requests]
    assert len(arrivals) == 3
    assert arrivals[1] - arrivals[0] >= 0.4  # waited as long as Retry-After asked
    assert graded.usage.requests == 3  # every HTTP request is accounted, failed ones too


async def test_slow_reply_times_out_and_is_retried(openai_server, make_judge):
    openai_server.script("question 2", Reply({"reasoning": "late", "score": 2}, delay=2.0), grade_reply(5))
    judge = make_judge(openai_server.base_url, request_timeout=0.3)
    record = (await judge.grade(GradeJob([en_item(2)]))).records[0]
    assert (record.outcome, record.score) == (Outcome.GRADED, 5)
    assert openai_server.count == 2


async def test_httpx_transport_retries_too(openai_server, make_judge):
    # The default transport is aiohttp when installed; the openai client's own httpx transport must work alike.
    openai_server.script("question 9", Error(429, retry_after=0.05), Raw(b"<html>"), Reply("{}", delay=2.0),
                         grade_reply(6))  # fmt: skip
    judge = make_judge(openai_server.base_url, http_transport="httpx", request_timeout=0.3)
    record = (await judge.grade(GradeJob([en_item(9)]))).records[0]
    assert (record.outcome, record.score) == (Outcome.GRADED, 6)
    assert openai_server.count == 4


async def test_exhausted_retries_fail_the_call_retryably_and_the_rest_is_cached(openai_server, make_judge):
    # Issue 19, row 7: an outage is not an ERROR item a study would store as done, but UNAVAILABLE.
    openai_server.script("question 3", Error(503), Error(503), Error(503), grade_reply(5))
    judge = make_judge(openai_server.base_url, max_attempts=3)
    with pytest.raises(Unavailable, match=r"1 of 2 items were not graded .*items\[0\]: gave up after 3 attempts"):
        await judge.grade(GradeJob([en_item(3), en_item(12)]))
    assert openai_server.count == 4  # three attempts for item 0, one for item 1
    again = await judge.grade(GradeJob([en_item(3), en_item(12)]))  # the retry pays only for the missing one
    assert [(r.outcome, r.score, r.cached) for r in again.records] == [(Outcome.GRADED, 5, False),
                                                                        (Outcome.GRADED, 4, True)]  # fmt: skip
    assert openai_server.count == 5


async def test_rejected_key_fails_the_item_at_once_without_leaking_it(openai_server, make_judge):
    openai_server.script("question 4", Error(401, message=f"Incorrect API key provided: {TEST_API_KEY}"))
    record = (await make_judge(openai_server.base_url).grade(GradeJob([en_item(4)]))).records[0]
    assert record.outcome is Outcome.ERROR and record.error.code == "PERMISSION_DENIED"
    assert TEST_API_KEY not in record.error.message
    assert openai_server.count == 1


async def test_broken_json_gets_one_repair_then_is_recorded_unparsable(openai_server, make_judge):
    openai_server.script("question 5", Reply('{"reasoning": "cut off", "score": '), Reply("I would say 5."))
    judge = make_judge(openai_server.base_url)
    record = (await judge.grade(GradeJob([en_item(5)], run_id="unparsable"))).records[0]
    assert record.outcome is Outcome.UNPARSABLE and record.score == 0  # never guessed (not the 5 in prose)
    assert record.raw_reply == '{"reasoning": "cut off", "score": ' + REPAIR_SEPARATOR + "I would say 5."
    assert "after one repair request" in record.note
    assert openai_server.count == 2
    repair_request = openai_server.requests[1].body["messages"]
    assert [m["role"] for m in repair_request] == ["user", "assistant", "user"]
    assert "could not be used" in repair_request[2]["content"]
    # Recorded as UNPARSABLE, and a rerun reuses the record rather than asking again.
    again = (await make_judge(openai_server.base_url).grade(GradeJob([en_item(5)]))).records[0]
    assert again.outcome is Outcome.UNPARSABLE and again.cached and openai_server.count == 2


async def test_score_out_of_range_is_rejected_then_repaired(openai_server, make_judge):
    openai_server.script("question 6", grade_reply(9), Reply('```json\n{"reasoning": "fixed", "score": 3}\n```'))
    openai_server.script("question 7", grade_reply(0), grade_reply(7))
    graded = await make_judge(openai_server.base_url).grade(GradeJob([en_item(6), en_item(7)]))
    repaired, rejected = graded.records
    assert (repaired.outcome, repaired.score, repaired.reasoning) == (Outcome.GRADED, 3, "fixed")
    assert "score 9 is outside 1..6" in repaired.note
    assert (rejected.outcome, rejected.score) == (Outcome.UNPARSABLE, 0)
    assert openai_server.count == 4


async def test_broken_http_body_is_retried(openai_server, make_judge):
    openai_server.script("question 8", Raw(b"<html>bad gateway</html>"), grade_reply(2))
    record = (await make_judge(openai_server.base_url).grade(GradeJob([en_item(8)]))).records[0]
    assert (record.outcome, record.score) == (Outcome.GRADED, 2)
    assert openai_server.count == 2


async def test_request_is_deterministic_json_mode_with_the_rubric(openai_server, make_judge):
    judge = make_judge(openai_server.base_url, model="gpt-4o-mini", seed=42)
    await judge.grade(GradeJob([GradeItem("Wie spät ist es?", "Es ist drei Uhr.", "de", response_language="de")]))
    request = openai_server.requests[0]
    body = request.body
    assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0 and body["seed"] == 42
    assert body["response_format"] == {"type": "json_object"}
    prompt = body["messages"][0]["content"]
    assert "Wie spät ist es?" in prompt and "Es ist drei Uhr." in prompt and "German" in prompt
    assert request.headers["authorization"] == f"Bearer {TEST_API_KEY}"


async def test_endpoint_without_json_mode_is_asked_without_it(make_judge):
    from tests.fixtures.judge import ScriptedOpenAIServer

    def default(request):
        if "response_format" in request.body:
            return Error(400, message="response_format is not supported by this model")
        return grade_reply(5)

    with ScriptedOpenAIServer(default=default) as server:
        judge = make_judge(server.base_url)
        graded = await judge.grade(GradeJob([en_item(1), en_item(2)]))
        assert [r.score for r in graded.records] == [5, 5]
        with_json = [r for r in server.requests if "response_format" in r.body]
        assert len(with_json) >= 1 and server.count - len(with_json) == 2


async def test_azure_openai_endpoint(openai_server, make_judge):
    azure_endpoint = openai_server.base_url.removesuffix("/v1")
    judge = make_judge(azure_endpoint, api_version="2024-06-01", model="my-gpt35-deployment")
    record = (await judge.grade(GradeJob([en_item(1)]))).records[0]
    assert (record.outcome, record.score) == (Outcome.GRADED, 4)
    request = openai_server.requests[0]
    assert request.path == "/openai/deployments/my-gpt35-deployment/chat/completions"
    assert request.query["api-version"] == "2024-06-01" and request.headers["api-key"] == TEST_API_KEY


async def test_a_stream_closed_early_stops_asking(make_judge):
    from tests.fixtures.judge import ScriptedOpenAIServer

    with ScriptedOpenAIServer(latency=0.2) as server:
        judge = make_judge(server.base_url, concurrency=2)
        stream = judge.grade_stream(GradeJob([en_item(n) for n in range(20)], run_id="closed"))
        first = await anext(stream)
        await stream.aclose()  # the client went away
        asked = server.count
        await asyncio.sleep(0.5)
        assert first.outcome is Outcome.GRADED and asked <= 4 and server.count == asked
        assert (await judge.get_usage("closed")).requests == asked


async def test_concurrency_is_bounded(make_judge):
    from tests.fixtures.judge import ScriptedOpenAIServer

    with ScriptedOpenAIServer(latency=0.1) as server:
        await make_judge(server.base_url, concurrency=3).grade(GradeJob([en_item(n) for n in range(12)]))
        assert server.max_in_flight == 3


async def test_usage_and_cost_per_run(openai_server, make_judge):
    from services.judge.settings import Price

    openai_server.script("question", Reply({"reasoning": "r", "score": 4}, prompt_tokens=1000, completion_tokens=100),
                         repeat_last=True)  # fmt: skip
    judge = make_judge(openai_server.base_url, model="priced", prices={"priced": Price(input=2.0, output=10.0)})
    await judge.grade(GradeJob([en_item(1), en_item(2)], run_id="costs"))
    await judge.grade(GradeJob([en_item(1), en_item(3)], run_id="costs"))
    usage = await judge.get_usage("costs")
    assert (usage.requests, usage.prompt_tokens, usage.completion_tokens, usage.cached) == (3, 3000, 300, 1)
    assert usage.cost_usd == pytest.approx(3 * (1000 * 2.0 + 100 * 10.0) / 1e6)


async def test_api_key_never_in_records_cache_or_logs(openai_server, make_judge, caplog, tmp_path: Path):
    caplog.set_level(logging.DEBUG)  # the openai client and httpx log requests at DEBUG
    openai_server.script("question 1", Error(429, retry_after=0.01), Reply("no json"), grade_reply(3))
    judge = make_judge(openai_server.base_url)
    graded = await judge.grade(GradeJob([en_item(1), en_item(2)], run_id="secrets"))
    await judge.translate(TranslateJob(["Hello"], target_language="de", run_id="secrets"))
    assert openai_server.requests[0].headers["authorization"].endswith(TEST_API_KEY)  # it was used...
    assert "judge_retry" in caplog.text and "HTTP 429" in caplog.text  # the retry was logged...
    assert TEST_API_KEY not in caplog.text  # ...the key never
    assert TEST_API_KEY not in repr(graded)
    stored = [p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert stored and not any(TEST_API_KEY.encode() in blob for blob in stored)
    assert TEST_API_KEY not in repr(judge.settings)


# -- the language gate on real text ---------------------------------------------------------------------------


async def test_language_gate_makes_no_request_for_a_wrong_language_reply(openai_server, make_judge, lid_service,
                                                                         shared_dir: Path):  # fmt: skip
    from services.judge.lid_gate import LidServiceIdentifier

    ((ru_prompt, ru_reply),) = oasst_replies(shared_dir, "ru", 1)
    ((de_prompt, de_reply),) = oasst_replies(shared_dir, "de", 1)
    identifier = LidServiceIdentifier(lid_service)
    judge = make_judge(openai_server.base_url, identifier=identifier)
    graded = await judge.grade(GradeJob([
        GradeItem(ru_prompt, ru_reply, "de", id="ru-for-de"),  # a Russian answer where German was asked
        GradeItem(de_prompt, de_reply, "de", id="de-for-de"),
    ]))  # fmt: skip
    gated, judged = graded.records
    assert (gated.outcome, gated.score, gated.detected_language) == (Outcome.LANGUAGE_MISMATCH, 1, "ru")
    assert "Russian (ru)" in gated.reasoning and "German (de)" in gated.reasoning and gated.raw_reply == ""
    assert (judged.outcome, judged.detected_language) == (Outcome.GRADED, "de")
    assert openai_server.count == 1  # only the German reply reached the judge model
    assert ru_reply not in openai_server.requests[0].text
    await identifier.aclose()


async def test_given_response_language_skips_lid(openai_server, make_judge):
    # No identifier configured: items that say their language need none.
    judge = make_judge(openai_server.base_url)
    record = (await judge.grade(GradeJob([GradeItem("Q", "Ответ по-русски", "de", response_language="ru")]))).records[0]
    assert (record.outcome, record.score) == (Outcome.LANGUAGE_MISMATCH, 1)
    assert "given by the caller" in record.reasoning and openai_server.count == 0


# -- translation ----------------------------------------------------------------------------------------------


async def test_translate_keeps_whitespace_and_is_cached(openai_server, make_judge):
    # Matched on the code block only the first text has: the third ("Good morning") is sent at the same time
    # and must not take this reply (a race that failed the test now and then).
    openai_server.script("print('hi')", Reply("Guten Morgen\n\n```python\nprint('hi')\n```"))
    judge = make_judge(openai_server.base_url)
    source = "\nGood morning\n\n```python\nprint('hi')\n```\n"
    job = TranslateJob([source, "   ", "Good morning"], target_language="de", source_language="en", run_id="mt")
    first = await judge.translate(job)
    assert first.records[0].text == "\nGuten Morgen\n\n```python\nprint('hi')\n```\n"
    assert first.records[1].text == "   " and first.usage.requests == 2
    prompt = openai_server.requests[0].text
    assert "from English into German" in prompt and "Do not translate code" in prompt
    assert "response_format" not in openai_server.requests[0].body
    second = await make_judge(openai_server.base_url).translate(job)
    assert openai_server.count == 2 and [r.cached for r in second.records] == [True, False, True]
    same = await judge.translate(TranslateJob(["Hallo"], target_language="de", source_language="de"))
    assert same.records[0].text == "Hallo" and openai_server.count == 2  # nothing to translate


async def test_translate_then_judge(openai_server, make_judge):
    openai_server.script("Bonjour", Reply("Hello, here is a complete answer."))
    openai_server.script("here is a complete answer", grade_reply(5))
    judge = make_judge(openai_server.base_url)
    item = GradeItem("Salut ?", "Bonjour, voici une réponse complète.", "fr", response_language="fr")
    record = (await judge.grade(GradeJob([item], translate_first=True))).records[0]
    assert (record.outcome, record.score) == (Outcome.GRADED, 5)
    assert openai_server.count == 2
    assert "into English" in openai_server.requests[0].text
    assert "Hello, here is a complete answer." in openai_server.requests[1].text
    assert "Bonjour" not in openai_server.requests[1].text
