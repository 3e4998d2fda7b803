"""`evaluate_models` in a study file: adapters become URIs, and a bad entry names its field and line."""

from __future__ import annotations

import pytest

from flows.config import ConfigError, parse_config
from flows.evaluate_only import chosen
from services.common.errors import InvalidArgument

STUDY = """\
name: tiny
base_models:
  - name: llama2-7b
    model: meta-llama/Llama-2-7b-hf
evaluate_models:
  - {name: bare, base_model: llama2-7b}
  - {name: theirs, base_model: llama2-7b, adapter: adapters/theirs}
  - {name: remote, base_model: llama2-7b, adapter: "s3://bucket/adapters/x"}
evaluation:
  tasks:
    xnli: {languages: [en]}
"""


def test_adapters_are_uris_relative_to_the_study_file(tmp_path):
    cfg = parse_config(STUDY, base_dir=tmp_path)
    assert [m.adapter for m in cfg.evaluate_models] == [
        None, (tmp_path / "adapters" / "theirs").as_uri(), "s3://bucket/adapters/x"
    ]  # fmt: skip
    assert [m.name for m in chosen(cfg, ["remote"])] == ["remote"]
    with pytest.raises(InvalidArgument, match="no evaluate_models entry named \\['nope'\\]"):
        chosen(cfg, ["nope"])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: x, base_model: falcon-7b}", "base_model 'falcon-7b' is none of base_models"),
        ("{name: x, base_model: llama2-7b, adapter: 'hf://org/adapter'}", "adapter must be a local directory"),
    ],
)
def test_a_bad_entry_names_its_field(entry, message):
    text = STUDY.replace("  - {name: bare, base_model: llama2-7b}", f"  - {entry}")
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(text)
    assert "evaluate_models" in str(info.value)


def test_eval_refuses_before_any_work_a_study_without_such_models(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    study = tmp_path / "study.yaml"
    study.write_text(STUDY.split("evaluate_models:")[0] + "evaluation:\n  tasks:\n    xnli: {languages: [en]}\n")
    run = CliRunner().invoke(app, ["eval", str(study), "--state-dir", str(tmp_path / "state")])
    assert run.exit_code == 2 and "lists no models to evaluate" in run.output
    assert not (tmp_path / "state").exists()


def test_eval_checks_and_starts_only_the_services_it_calls(tmp_path):
    """`polyglot eval` never calls the trainer, so a local run neither starts nor waits for one."""
    import socket

    from flows import preflight
    from flows.evaluate_only import SERVICES_USED

    assert "trainer" not in SERVICES_USED
    with socket.socket() as s:  # a port nobody listens on: every service "there" is down
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    services = "".join(f"  {name}: {dead}\n" for name in ("lid", "generator", "judge", "trainer"))
    cfg = parse_config(STUDY + f"services:\n{services}artifact_store: {tmp_path.as_uri()}\n", base_dir=tmp_path)
    problems = preflight.check(cfg, services=True, hub_offline="1", timeout=2, only=SERVICES_USED)
    named = {problem.split(" ", 1)[0] for problem in problems}
    assert {"lid", "generator", "judge"} <= named and "trainer" not in named
