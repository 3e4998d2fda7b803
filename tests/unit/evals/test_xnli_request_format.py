"""XNLI's request formats ask the generator's Score for the start token their harness version uses."""

from __future__ import annotations

from flows.evals import TASKS
from flows.evals.xnli import score_options


def test_lm_eval_03_starts_with_eos_and_04_keeps_the_default_bos():
    task = TASKS.get("xnli")
    assert score_options(task.options(languages=["de"], request_format="lm-eval-0.3")) == {"start_token": "eos"}
    assert score_options(task.options(languages=["de"])) == {}  # lm-eval-0.4: Score's default (BOS)
    assert task.hook_module.score_options is score_options  # what flows.steps._score_choices looks up
