"""Request bounds (issue 19, rows 9 and 10): settings reach the generator; sizes count UTF-8 bytes and the
errors name the field."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.generator.factory import create_generator
from services.generator.limits import RequestLimits
from services.generator.settings import GeneratorSettings


def test_the_settings_set_the_generators_limits():
    settings = GeneratorSettings(model=None, max_prompt_bytes=10, max_request_bytes=25, max_request_id_bytes=4,
                                 stream_stall_seconds=2.5)  # fmt: skip
    assert create_generator(settings).limits == RequestLimits(10, 25, 4, 2.5)


@pytest.mark.parametrize(
    ("prompts", "prefix", "field"),
    [(["ok", "x" * 11], "", "prompts[1]"), (["€" * 4], "", "prompts[0]"), (["ok"] * 3, "", None),
     (["ok", "abcdefgh"], "xyz", "prompts[1]"), (["abcdefgh"] * 4, "", "prompts"),
     (["ok"], "x" * 11, "response_prefix")],
)  # fmt: skip
def test_prompt_sizes_are_bounded_in_utf8_bytes(prompts, prefix, field):
    limits = RequestLimits(max_prompt_bytes=10, max_request_bytes=25)
    if field is None:
        limits.check_prompts(prompts, prefix)
        return
    with pytest.raises(InvalidArgument) as info:
        limits.check_prompts(prompts, prefix)
    assert info.value.field == field


def test_request_id_and_score_items_are_bounded():
    limits = RequestLimits(max_prompt_bytes=10, max_request_bytes=25, max_request_id_bytes=4)
    limits.check_request_id("abcd")
    with pytest.raises(InvalidArgument) as info:
        limits.check_request_id("abcdé")
    assert info.value.field == "request_id"
    with pytest.raises(InvalidArgument) as info:
        limits.check_score_items([("ctx", "cont"), ("context", " more")])
    assert info.value.field == "items[1]"
