"""`polyglot plan`: grid counts checked against hand-computed numbers, estimates against their assumptions."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from flows.config import BaseModelConfig
from flows.plan import Assumptions, estimate_params_b, plan_study, render_plan


def by_task(plan):
    return {f"{e.task} {e.variant}".strip(): e for e in plan.evaluations}


def test_smoke_grid(smoke_cfg):
    plan = plan_study(smoke_cfg)
    # 1 base model × 3 mixes; 3 seeds (XNLI: 1). chat 5 langs × 4 items; XQuAD 5 × 6 × 2 modes; X-CSQA 5 × 4;
    # XNLI 6 × 12.
    assert [(j.mix, j.steps, j.sequences) for j in plan.training_jobs] == [
        ("mono", 6, 24),
        ("multi-2", 6, 24),
        ("multi-3", 6, 24),
    ]
    tasks = by_task(plan)
    assert tasks["chat"].generations == 5 * 4 * 3 * 3 == 180
    assert tasks["chat"].judge_calls == 180
    assert tasks["xquad en:xx"].generations == tasks["xquad xx:xx"].generations == 5 * 6 * 3 * 3 == 270
    assert tasks["xcsqa"].generations == 5 * 4 * 3 * 3 == 180
    assert tasks["xnli"].generations == 0 and tasks["xnli"].scored_continuations == 6 * 12 * 3 * 1 * 3 == 648
    assert plan.totals == {
        "training_jobs": 3,
        "models_evaluated": 3,
        # mixes × (seeds × generated pairs (confusion: es ru zh × 2 settings) + XNLI once)
        "evaluation_shards": 3 * (3 * (5 + 5 + 5 + 5 + 3 + 3) + 6),
        "generations": 180 + 540 + 180 + 2 * 3 * 3 * 3 * 3,  # confusion: 2 settings × 3 langs × 3 × 3 seeds × 3
        "scored_continuations": 648,
        "judge_calls": 180,
        "translation_requests": 0,  # en es ru zh fr all have human AlpacaEval translations
    }
    assert plan.api_cost_usd["total"] == 0.0  # the judge runs on the local generator
    assert plan.pipeline_check and any("not meaningful" in note for note in plan.notes)


def test_paper_llama2_7b_grid(paper_cfg):
    plan = plan_study(paper_cfg)
    tasks = by_task(plan)
    assert len(plan.training_jobs) == 7 and {j.sequences for j in plan.training_jobs} == {2000 * 64}
    # The paper profile: all 805 AlpacaEval prompts generated, 300 of them judged; XNLI's test split.
    assert tasks["chat"].generations == 13 * 805 * 3 * 7 == 219_765
    assert tasks["xquad en:xx"].generations + tasks["xquad xx:xx"].generations == 7 * 1190 * 2 * 3 * 7 == 349_860
    assert tasks["xcsqa"].generations == 7 * 1000 * 3 * 7 == 147_000
    assert tasks["xnli"].scored_continuations == 9 * 5010 * 3 * 1 * 7 == 946_890
    assert plan.totals["generations"] == 219_765 + 349_860 + 147_000
    assert plan.totals["judge_calls"] == 13 * 300 * 3 * 7 == 81_900
    # The paper's own translations of AlpacaEval cover all 13 chat languages: nothing to translate.
    assert plan.totals["translation_requests"] == 0 and plan.translations == []
    polyglot = plan_study(paper_cfg.model_copy(update={"evaluation": paper_cfg.evaluation.model_copy(update={
        "tasks": {**paper_cfg.evaluation.tasks, "chat": paper_cfg.evaluation.tasks["chat"].model_copy(
            update={"alpaca_eval_prompts": "polyglot"})}})}))  # fmt: skip
    # Polyglot's prompts: 8 of the 13 chat languages have no human translation of AlpacaEval, 805 each, once.
    assert polyglot.totals["translation_requests"] == 8 * 805
    assert {t.language for t in polyglot.translations} == {"de", "sv", "ca", "no", "bg", "is", "hi", "el"}
    # Training: 7 jobs × 2000 steps × 6 s; judge: 81,900 × (900 × $0.5 + 60 × $1.5) / 1M tokens.
    assert plan.gpu_hours["training"] == pytest.approx(7 * 2000 * 6 / 3600)
    assert plan.api_cost_usd["judge"] == pytest.approx(81_900 * (0.9 * 0.0005 + 0.06 * 0.0015))


def test_assumptions_are_overridable_and_scale_the_estimates(paper_cfg):
    base, cheaper = plan_study(paper_cfg), plan_study(paper_cfg, Assumptions(train_seconds_per_step=3.0))
    assert cheaper.gpu_hours["training"] == pytest.approx(base.gpu_hours["training"] / 2)
    assert cheaper.totals == base.totals
    big = plan_study(paper_cfg, Assumptions(params_b={"llama2-7b": 70.0}))
    assert big.gpu_hours["total"] == pytest.approx(10 * base.gpu_hours["total"])


def test_machine_translated_mixes_need_translations(repo_root):
    from flows.config import load_config

    plan = plan_study(load_config(repo_root / "configs" / "paper-mt.yaml"))
    mt = [t for t in plan.translations if t.purpose.startswith("mix ")]
    assert sum(t.requests for t in mt) == (1 + 2 + 3 + 4 + 5) * 200  # K rows per added language per MT mix


def test_parameter_counts():
    a = Assumptions()
    assert estimate_params_b(BaseModelConfig(name="x", model="meta-llama/Llama-2-70b-hf"), a)[0] == 70
    assert estimate_params_b(BaseModelConfig(name="x", model="tiiuae/falcon-7b"), a)[0] == 7
    assert estimate_params_b(BaseModelConfig(name="x", model="org/mystery"), a) == (
        7.0,
        "guess (set assumptions.params_b)",
    )


def test_tiny_model_size_comes_from_its_config(smoke_cfg):
    params, source = estimate_params_b(smoke_cfg.base_models[0], Assumptions())
    assert source == "llama_config" and params == pytest.approx(0.0085, rel=0.01)  # 8.5 M parameters


def test_render_prints_grid_totals_and_assumptions(paper_cfg):
    plan = plan_study(paper_cfg)
    console = Console(record=True, width=200)
    console.print(render_plan(plan))
    text = console.export_text()
    for needle in (
        "Training jobs",
        "multi-6",
        "81,900",
        "716,625",
        "GPU-hours total",
        "API cost total",
        "train_seconds_per_step",
        "usd_per_1k_input_tokens",
        "NVIDIA A100",
    ):
        assert needle in text, needle
    assert json.loads(json.dumps(plan.to_json()))["totals"]["judge_calls"] == 81_900


def test_the_eval_grid_counts_evaluate_models_and_no_training(smoke_cfg):
    """`plan --eval`: the models of `evaluate_models` per base model, over the same tasks, and no training job."""
    from flows.config.evaluated import EvaluatedModel

    models = [EvaluatedModel(name=name, base_model="tiny-llama") for name in ("bare", "theirs")]
    cfg = smoke_cfg.model_copy(update={"evaluate_models": models})
    study, evaluation = plan_study(cfg), plan_study(cfg, evaluate_only=True)
    assert evaluation.training_jobs == [] and evaluation.mixes == ["bare", "theirs"]
    assert evaluation.totals["models_evaluated"] == 2 and study.totals["models_evaluated"] == 3
    per_model = {k: v.generations // v.models for k, v in by_task(study).items()}
    assert {k: v.generations for k, v in by_task(evaluation).items()} == {k: 2 * g for k, g in per_model.items()}
    assert any("polyglot plan --eval" in note for note in study.notes)
    console = Console(width=200, record=True)
    console.print(render_plan(evaluation))
    text = console.export_text()
    assert "Evaluation plan: smoke" in text and "models (evaluate_models): bare, theirs" in text
