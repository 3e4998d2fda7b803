"""The paper's decoding presets and the validation of sampling parameters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.common.errors import InvalidArgument
from services.common.presets import (
    DATA_SEED,
    GUANACO_STOPS,
    PAPER_SEEDS,
    PRESETS,
    SamplingParams,
    get_preset,
)


def test_chat_preset_is_the_papers():
    chat = get_preset("chat")
    assert (chat.temperature, chat.top_p, chat.top_k, chat.frequency_penalty) == (0.8, 0.9, 50, 0.2)
    assert chat.max_tokens == 1024
    assert chat.stop == ("### Human:", "### Assistant:") == GUANACO_STOPS
    assert chat.repetition_penalty == 1.0 and chat.seed is None


def test_constrained_preset_is_near_greedy_with_short_answers():
    constrained = get_preset("constrained")
    assert constrained.temperature == 0.001
    assert constrained.stop == GUANACO_STOPS
    assert 0 < constrained.max_tokens <= 128
    assert (constrained.top_p, constrained.top_k, constrained.frequency_penalty) == (1.0, 0, 0.0)


def test_paper_seeds():
    assert PAPER_SEEDS == (0, 42, 723)
    assert DATA_SEED == 42


def test_unknown_preset_names_the_field():
    with pytest.raises(InvalidArgument) as info:
        get_preset("greedy")
    assert info.value.field == "preset"
    assert "chat" in info.value.message and "constrained" in info.value.message


def test_presets_cannot_be_changed():
    with pytest.raises(TypeError):
        PRESETS["chat"] = SamplingParams()  # type: ignore[index]
    with pytest.raises(ValidationError):
        get_preset("chat").temperature = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("top_p", 0.0),
        ("top_p", 1.01),
        ("temperature", -0.1),
        ("top_k", -1),
        ("max_tokens", 0),
        ("frequency_penalty", 2.5),
        ("repetition_penalty", 0.0),
        ("seed", -1),
        ("stop", "### Human:x"),  # a bare string would be split into characters by some clients
        ("nucleus", 0.9),  # unknown field
    ],
)
def test_invalid_values_are_rejected_naming_the_field(field, value):
    with pytest.raises(ValidationError) as info:
        SamplingParams(**{field: value})
    assert info.value.errors()[0]["loc"][0] == field


def test_edges_are_accepted():
    params = SamplingParams(top_p=1.0, temperature=0.0, top_k=0, max_tokens=1, stop=["\n"], seed=0)
    assert params.stop == ("\n",)


def test_with_seed_and_with_overrides_copy_and_validate():
    chat = get_preset("chat")
    seeded = chat.with_seed(723)
    assert seeded.seed == 723 and chat.seed is None and seeded.top_k == 50
    short = chat.with_overrides(max_tokens=48)
    assert short.max_tokens == 48 and short.temperature == 0.8
    with pytest.raises(ValidationError):
        chat.with_overrides(max_tokens=0)


def test_every_field_is_documented():
    assert all(info.description for info in SamplingParams.model_fields.values())
