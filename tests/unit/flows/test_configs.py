"""Every study config in configs/ validates, and the paper configs describe the paper's runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.config import load_config
from services.common import languages

CONFIGS = sorted((Path(__file__).resolve().parents[3] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_loads(path):
    cfg = load_config(path)
    assert cfg.name == path.stem


def test_polyglot_config_check_accepts_every_config():
    runner = CliRunner()
    for path in CONFIGS:
        result = runner.invoke(app, ["config", "check", str(path)])
        assert result.exit_code == 0, result.output
        assert "ok" in result.output


def test_paper_llama2_7b_is_the_full_grid(paper_cfg):
    assert [m.model for m in paper_cfg.base_models] == ["meta-llama/Llama-2-7b-hf"]
    assert paper_cfg.data.mixes.build == ["mono", "multi-2", "multi-3", "multi-4", "multi-5", "multi-6", "full"]
    assert paper_cfg.data.conversations.source == "timdettmers/openassistant-guanaco"
    tasks = paper_cfg.evaluation.tasks
    assert list(tasks) == ["chat", "xquad", "xcsqa", "xnli"]
    assert tasks["chat"].languages == list(languages.codes(languages.STUDY_LANGUAGES))  # all 13
    assert paper_cfg.seeds == [0, 42, 723]
    assert (paper_cfg.judge.provider, paper_cfg.judge.model) == ("openai", "gpt-3.5-turbo-1106")  # the paper profile
    assert not paper_cfg.is_pipeline_check


def test_paper_side_studies(repo_root):
    mt = load_config(repo_root / "configs" / "paper-mt.yaml")
    assert {s.name for s in mt.data.mixes.specs() if s.machine_translated} == {f"multi-{i}-mt" for i in range(2, 7)}
    big = load_config(repo_root / "configs" / "paper-llama2-70b.yaml")
    assert list(big.evaluation.tasks) == ["chat"]
    assert big.data.mixes.build == ["mono", *(f"multi-{i}-mt" for i in range(2, 7))]  # the 70B study's ML1-ML6
    (model,) = big.base_models
    assert (model.model, model.backend, model.tensor_parallel_size) == ("meta-llama/Llama-2-70b-hf", "vllm", 4)
    falcon = load_config(repo_root / "configs" / "paper-falcon-7b.yaml")
    assert [m.model for m in falcon.base_models] == ["tiiuae/falcon-7b"]
