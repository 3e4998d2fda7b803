"""Protocol profiles: a config starts from its profile's values; its own values, and overrides, win."""

from __future__ import annotations

import pytest

from flows.config import ConfigError, parse_config
from flows.config.profile import PROFILES, profile_values

BASE = """
name: t
base_models: [{name: m, model: org/m}]
evaluation:
  tasks:
    xnli:
"""


def test_a_profile_fills_what_the_config_leaves_out() -> None:
    paper = parse_config(BASE + "protocol: {profile: paper}\n")
    assert paper.protocol.profile == "paper"
    assert (paper.evaluation.tasks["xnli"].split, paper.evaluation.tasks["xnli"].request_format) == (
        "test",
        "lm-eval-0.3",
    )
    assert paper.training.append_eos is False and paper.lid.model == "openlid"
    default = parse_config(BASE)
    assert default.protocol.profile == "polyglot"
    assert default.evaluation.tasks["xnli"].split == "validation" and default.training.append_eos is True


def test_the_configs_own_values_and_overrides_win() -> None:
    text = BASE + "      split: validation\nprotocol: {profile: paper}\ntraining: {append_eos: true}\n"
    cfg = parse_config(text, overrides={"lid.model": "lid.176"})
    assert cfg.evaluation.tasks["xnli"].split == "validation"  # the file's
    assert cfg.evaluation.tasks["xnli"].request_format == "lm-eval-0.3"  # the profile's
    assert cfg.training.append_eos is True and cfg.lid.model == "lid.176"
    assert parse_config(BASE, overrides={"protocol.profile": "paper"}).training.append_eos is False


def test_a_profile_never_adds_a_task() -> None:
    cfg = parse_config(BASE + "protocol: {profile: paper}\n")
    assert list(cfg.evaluation.tasks) == ["xnli"]
    assert "chat" in profile_values("paper")["evaluation"]["tasks"]


def test_an_unknown_profile_is_an_error_naming_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + "protocol: {profile: papr}\n")
    assert caught.value.field == "protocol.profile" and caught.value.line == 7


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_value_is_a_valid_config_value(name: str) -> None:
    every_task = BASE.replace("    xnli:\n", "".join(f"    {t}:\n" for t in ("chat", "xquad", "xcsqa", "xnli")))
    cfg = parse_config(every_task + f"protocol: {{profile: {name}}}\n")
    assert cfg.protocol.profile == name
