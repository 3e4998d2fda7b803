"""`polyglot fidelity`: the paper configs match the paper on every element; the `polyglot` profile's deviations
carry their reasons; the generated docs/fidelity pages are current."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.protocol.fidelity import DEVIATION, MATCH, PAPER_CONFIGS, docs_page, elements, fidelity, matches

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # pages name configs by their path from the repository root


@pytest.mark.parametrize("config", PAPER_CONFIGS)
def test_paper_configs_deviate_nowhere(config: str) -> None:
    cfg, rows = fidelity(f"configs/{config}.yaml")
    assert cfg.protocol.profile == "paper"
    assert [r.element.name for r in rows] == [e.name for e in elements()]
    assert [r.element.name for r in rows if r.status == DEVIATION] == []
    assert any(r.status == MATCH for r in rows)


def test_polyglot_profile_lists_each_deviation_with_its_reason() -> None:
    _, rows = fidelity("configs/paper-llama2-7b.yaml", {"protocol.profile": "polyglot"})
    deviations = {r.element.name: r for r in rows if r.status == DEVIATION}
    assert {"training-eos", "xnli-split", "xnli-request-format", "lid-model", "judge-gate"} <= set(deviations)
    assert all(r.reason == r.element.reason and r.reason for r in deviations.values())
    assert deviations["xnli-split"].set_in == "flows/config/profiles/polyglot.yaml"


def test_set_in_names_the_file_line_the_override_and_the_profile() -> None:
    _, rows = fidelity("configs/paper-llama2-7b.yaml", {"training.append_eos": "true"})
    where = {r.element.name: r.set_in for r in rows}
    assert where["training-eos"] == "--set"
    assert where["seeds"].startswith("configs/paper-llama2-7b.yaml:")
    line = int(where["seeds"].rsplit(":", 1)[1])
    assert Path("configs/paper-llama2-7b.yaml").read_text().splitlines()[line - 1].startswith("seeds:")
    assert where["xnli-split"] == "flows/config/profiles/paper.yaml"
    assert where["sample-seed"].startswith("configs/paper-llama2-7b.yaml:")


def test_matches_compares_a_mapping_key_by_key() -> None:
    assert matches({"top_k": 50, "stop": ["a"]}, {"top_k": 50, "stop": ("a",), "seed": None})
    assert not matches({"top_k": 50}, {"top_k": 0})
    assert not matches(None, 300)


@pytest.mark.parametrize("config", PAPER_CONFIGS)
def test_generated_pages_are_current(config: str) -> None:
    page = ROOT / "docs" / "fidelity" / f"{config}.md"
    assert page.is_file(), f"missing {page}: run `.venv/bin/python -m flows.protocol.fidelity --write-docs`"
    assert page.read_text(encoding="utf-8") == docs_page(config), (
        f"{page} is stale: run `.venv/bin/python -m flows.protocol.fidelity --write-docs`"
    )


def test_cli_prints_the_table_and_refuses_an_unknown_profile() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["fidelity", "configs/paper-llama2-7b.yaml", "--set", "protocol.profile=polyglot"])
    assert result.exit_code == 0, result.output
    assert "| training-eos | `false` | `true` |" in result.output and "**deviation**" in result.output
    bad = runner.invoke(app, ["fidelity", "configs/paper-llama2-7b.yaml", "--set", "protocol.profile=nope"])
    assert bad.exit_code == 2 and "protocol.profile" in bad.output
