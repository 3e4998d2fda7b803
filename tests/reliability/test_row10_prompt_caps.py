"""Row 10: no per-prompt size cap in the generator; a 20 MB prompt took the process from 1 GB to 2.8 GB.
Reproduced before the fix against the real generator (tiny Llama, hf): any prompt the 64 MiB message limit
let through was tokenised whole before being cut from the left to fit the context (the report's 20 MB cost
1.8 GB); here a 300 kB prompt, and a request whose prompts add up past the request cap, were answered like
any other.

Remedy (services/generator/limits.py, checked by `core.Generator` before anything is tokenised): a prompt
with its response prefix, or a Score item, is at most `max_prompt_bytes` (256 KiB by default: far past any
context the paper's models have) and a request's prompts together at most `max_request_bytes` (16 MiB),
or INVALID_ARGUMENT naming `prompts[i]` / `prompts` (`items[i]` / `items` for Score).

    .venv/bin/python -m pytest tests/reliability/test_row10_prompt_caps.py -q
"""

from __future__ import annotations

import dataclasses

import pytest

from services.common import errors

OVER_THE_DEFAULT_CAP = 300_000  # bytes; the default cap is 256 KiB


@pytest.fixture
def small_request_cap(generator_service):
    """The running server's per-request cap lowered to 64 kB (restored after)."""
    generator = generator_service.generator
    saved = getattr(generator, "limits", None)
    if saved is not None:
        generator.limits = dataclasses.replace(saved, max_request_bytes=64_000)
    try:
        yield 64_000
    finally:
        if saved is not None:
            generator.limits = saved


def _field(exc: errors.PolyglotError) -> str:
    return str(exc).split(":", 1)[0]  # the field, as the client receives it


def test_a_prompt_over_the_cap_is_invalid_argument_naming_it(generator_client):
    with pytest.raises(errors.InvalidArgument) as info:
        generator_client.generate_all(["Hello", "x" * OVER_THE_DEFAULT_CAP], max_tokens=2)
    assert _field(info.value) == "prompts[1]"
    with pytest.raises(errors.InvalidArgument) as info:  # multi-byte text counts in bytes: 100k × 3
        generator_client.generate_all(["€" * 100_000], max_tokens=2)
    assert _field(info.value) == "prompts[0]"
    with pytest.raises(errors.InvalidArgument) as info:
        generator_client.score([("Hello", " world"), ("x" * OVER_THE_DEFAULT_CAP, " y")])
    assert _field(info.value) == "items[1]"


def test_prompts_that_add_up_past_the_request_cap_are_invalid_argument(generator_client, small_request_cap):
    prompts = ["x" * (small_request_cap // 3)] * 4  # each under every per-prompt cap
    with pytest.raises(errors.InvalidArgument) as info:
        generator_client.generate_all(prompts, max_tokens=2)
    assert _field(info.value) == "prompts"
    [completion] = generator_client.generate_all(["Hello"], max_tokens=2)  # a normal request is still served
    assert completion.error is None
