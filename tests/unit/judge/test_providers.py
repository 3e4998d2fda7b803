"""Provider plumbing that needs no server: Retry-After, redaction, back-off, the registry."""

from __future__ import annotations

import email.utils
import time

import pytest
from tenacity import RetryCallState

from services.common.errors import FailedPrecondition, InvalidArgument
from services.judge.providers import PROVIDERS, ProviderPool, TransientError, parse_retry_after, redact
from services.judge.settings import JudgeSettings


def test_retry_after_forms():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    in_3s = email.utils.formatdate(time.time() + 3, usegmt=True)
    assert 1.0 < parse_retry_after({"retry-after": in_3s}) <= 3.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_redact_removes_the_key_and_its_echoed_tail():
    key = "sk-proj-abcdefghijklmnop1234"
    text = redact(f"Incorrect API key provided: {key}. Also sk-proj-****1234.", [key])
    assert key not in text and "1234" not in text


def _settings(**overrides) -> JudgeSettings:
    values = dict(base_url="http://127.0.0.1:9/v1", api_key="sk-unit", backoff_initial=0.1, backoff_max=1.0,
                  max_retry_after=5.0)  # fmt: skip
    return JudgeSettings(**{**values, **overrides})


def _state(attempt: int, exc: BaseException) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_backoff_grows_with_jitter_and_honours_retry_after():
    provider = ProviderPool(_settings()).get("openai")
    first = [provider._wait(_state(1, TransientError("HTTP 500"))) for _ in range(50)]
    third = [provider._wait(_state(3, TransientError("HTTP 500"))) for _ in range(50)]
    assert all(0.1 <= w <= 0.2 for w in first) and len(set(first)) > 1
    assert all(0.4 <= w <= 0.8 for w in third)
    assert all(1.5 <= provider._wait(_state(1, TransientError("HTTP 429", 1.5))) <= 1.8 for _ in range(20))
    capped = provider._wait(_state(1, TransientError("HTTP 429", 3600)))
    assert 5.0 <= capped <= 6.0


def test_registry_knows_both_providers_and_names_the_field_for_others():
    assert {"openai", "generator"} <= set(PROVIDERS.names())
    with pytest.raises(InvalidArgument) as info:
        ProviderPool(_settings()).get("anthropic", field="judge.provider")
    assert info.value.field == "judge.provider"


def test_openai_without_key_or_endpoint_fails_naming_the_setting(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("POLYGLOT_JUDGE_API_KEY", raising=False)
    with pytest.raises(FailedPrecondition) as info:
        ProviderPool(JudgeSettings(base_url=None, api_key=None)).get("openai")
    assert info.value.field == "api_key" and "OPENAI_API_KEY" in info.value.message


def test_generator_without_address_fails_naming_the_setting():
    with pytest.raises(FailedPrecondition) as info:
        ProviderPool(_settings(generator_address=None)).get("generator")
    assert info.value.field == "generator_address"


async def test_generator_lays_out_a_guanaco_conversation():
    # The provider opens a grpc.aio channel, which needs a running loop (as in the service).

    provider = ProviderPool(_settings(generator_address="127.0.0.1:9")).get("generator")
    one = provider.layout([{"role": "user", "content": "Grade {this}"}])
    assert one == "### Human: Grade {this} ### Assistant:"
    repair = provider.layout(
        [
            {"role": "user", "content": "Grade"},
            {"role": "assistant", "content": "five"},
            {"role": "user", "content": "JSON please"},
        ]
    )
    assert repair == "### Human: Grade ### Assistant: five ### Human: JSON please ### Assistant:"


@pytest.mark.parametrize("max_tokens", [64, 256, 512, 1024])
def test_the_generator_verdict_schema_fits_its_token_budget(max_tokens):
    from services.judge.generator_provider import TOKENS_PER_REASONING_CHAR, VERDICT_OVERHEAD_TOKENS, verdict_schema

    schema = verdict_schema(max_tokens).schema
    assert schema["required"] == ["reasoning", "score"] and schema["properties"]["score"]["enum"] == [1, 2, 3, 4, 5, 6]
    chars = schema["properties"]["reasoning"]["maxLength"]
    assert chars >= 0 and VERDICT_OVERHEAD_TOKENS + TOKENS_PER_REASONING_CHAR * chars <= max(max_tokens, 64)
