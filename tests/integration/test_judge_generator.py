"""Provider `generator`: the judge asks a Polyglot generator over real gRPC (an in-process stand-in servicer
that replies with scripted JSON, since the grades of a real tiny model are noise)."""

from __future__ import annotations

import json

from services.judge.records import GradeItem, GradeJob, Outcome
from services.judge.translation import TranslateJob


async def test_grades_through_the_generator_and_caches(scripted_generator, make_judge):
    address, generator = scripted_generator
    judge = make_judge("http://127.0.0.1:9/v1", provider="generator", model="tiny-llama", generator_address=address)
    items = [GradeItem(f"Q{n}?", f"An English answer {n}.", "en", response_language="en") for n in range(3)]
    graded = await judge.grade(GradeJob(items, run_id="gen"))
    assert [(r.outcome, r.score) for r in graded.records] == [(Outcome.GRADED, 5)] * 3
    assert len(generator.requests) == 3
    request = next(r for r in generator.requests if "Q0?" in r.prompts[0])
    assert request.adapter == ""  # `tiny-llama` is the generator's base model
    assert request.sampling.temperature == 0 and request.sampling.HasField("seed")
    prompt = request.prompts[0]
    assert prompt.startswith("### Human: You are an impartial judge") and prompt.endswith("reply] ### Assistant:")
    assert graded.usage.requests == 3 and graded.usage.cost_usd == 0 and graded.usage.prompt_tokens > 0

    await make_judge("http://127.0.0.1:9/v1", provider="generator", model="tiny-llama",
                     generator_address=address).grade(GradeJob(items, run_id="gen"))  # fmt: skip
    assert len(generator.requests) == 3  # the rerun was served from the cache


async def test_adapter_names_and_repair_through_the_generator(scripted_generator, make_judge):
    address, generator = scripted_generator
    replies = iter(["the answer is good", json.dumps({"reasoning": "ok now", "score": 2})])
    generator.reply = lambda prompt: next(replies)
    judge = make_judge("http://127.0.0.1:9/v1", provider="generator", model="judge-lora", generator_address=address)
    record = (await judge.grade(GradeJob([GradeItem("Q?", "A.", "en", response_language="en")]))).records[0]
    assert (record.outcome, record.score, record.reasoning) == (Outcome.GRADED, 2, "ok now")
    assert [r.adapter for r in generator.requests] == ["judge-lora", "judge-lora"]
    assert generator.requests[1].prompts[0].count("### Human:") == 2  # the repair turn follows the reply


async def test_translation_through_the_generator(scripted_generator, make_judge):
    address, generator = scripted_generator
    generator.reply = lambda prompt: " Hej världen "
    judge = make_judge("http://127.0.0.1:9/v1", provider="generator", model="tiny-llama", generator_address=address)
    translated = await judge.translate(TranslateJob(["Hello world"], target_language="sv", provider="generator"))
    assert translated.records[0].text == "Hej världen"


async def test_the_tiny_random_generator_grades_every_gated_item(generator_service, make_judge):
    """The real tiny Llama as the judge: its words are noise, but structured output makes every reply that
    passes the language gate a parsable verdict (as in the smoke study)."""
    base = generator_service.generator.engine.info.model
    judge = make_judge(
        "http://127.0.0.1:9/v1", provider="generator", model=base, generator_address=generator_service.address
    )
    items = [
        GradeItem("What is the capital of France?", "Paris is the capital.", "en", response_language="en"),
        GradeItem("¿Qué es la fotosíntesis?", "Convierte luz en energía.", "es", response_language="es"),
        GradeItem("Wie spät ist es?", "It is noon.", "de", response_language="en"),  # gated: scored 1, no call
        GradeItem("Name a prime number.", "Seven is prime. " * 40, "en", response_language="en"),
    ]
    graded = await judge.grade(GradeJob(items, run_id="tiny-judge"))
    outcomes = {r.index: r for r in graded.records}
    assert outcomes[2].outcome == Outcome.LANGUAGE_MISMATCH and outcomes[2].score == 1
    for index in (0, 1, 3):
        record = outcomes[index]
        assert record.outcome == Outcome.GRADED and 1 <= record.score <= 6, record
        assert not record.note, record.note  # the first reply already parsed: no repair request
