"""Request sampling = the paper's preset + explicit fields; errors name `sampling.<field>`."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.generator.core import resolve_sampling


def test_chat_preset_is_the_papers_decoding():
    chat = resolve_sampling("chat")
    assert (chat.top_p, chat.top_k, chat.temperature, chat.frequency_penalty, chat.max_tokens) == (
        0.9,
        50,
        0.8,
        0.2,
        1024,
    )
    assert chat.stop == ("### Human:", "### Assistant:")
    assert resolve_sampling("constrained").temperature == 0.001


def test_explicit_fields_override_the_preset():
    params = resolve_sampling("chat", {"max_tokens": 16, "seed": 723, "stop": ["\n"]})
    assert (params.max_tokens, params.seed, params.stop, params.top_p) == (16, 723, ("\n",), 0.9)
    assert resolve_sampling("", {"top_k": -1}).top_k == 0  # vLLM's "no cut"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"top_p": 0.0}, "sampling.top_p"),
        ({"top_p": 1.01}, "sampling.top_p"),
        ({"max_tokens": 0}, "sampling.max_tokens"),
        ({"temperature": -0.5}, "sampling.temperature"),
        ({"frequency_penalty": 3.0}, "sampling.frequency_penalty"),
        ({"stop": ["ok", ""]}, "sampling.stop[1]"),
    ],
)
def test_bad_fields_are_named(overrides, field):
    with pytest.raises(InvalidArgument) as err:
        resolve_sampling("chat", overrides)
    assert err.value.field == field


def test_unknown_preset_is_named():
    with pytest.raises(InvalidArgument) as err:
        resolve_sampling("creative")
    assert err.value.field == "preset"
