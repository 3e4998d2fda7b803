"""Chat prompts: the AlpacaEval sample, OMGEval's human translations aligned by index, OASST prompts, MT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.data.translation import Translator
from flows.evals import TASKS, TaskOptions
from services.common.errors import FailedPrecondition


@pytest.fixture
def config(shared_dir: Path) -> TaskOptions:
    data = shared_dir / "data"
    return TASKS.get("chat").options(
        languages=["en", "es", "zh", "de"],
        sample_size=300,
        prompt_sets=["alpaca_eval"],
        alpaca_eval=data / "alpaca_eval/alpaca_eval_gpt4_1106_preview_outputs.json",
        alpaca_eval_translations=data / "alpaca_eval/omgeval",
        oasst_prompts=data / "oasst_prompts",
    )


def test_paper_sample_of_300_same_questions_in_each_language(config: TaskOptions):
    task = TASKS.get("chat")
    en = task.build_items(config, "en", seed=42)
    es = task.build_items(config, "es", seed=42)
    zh = task.build_items(config, "zh", seed=42)
    assert len(en) == len(es) == len(zh) == 300
    assert [i.id for i in en] == [i.id for i in es] == [i.id for i in zh]
    assert "alpaca_eval/169" not in {i.id for i in en}  # OMGEval has no translation of it
    assert all(i.prompt == f"### Human: {i.instruction}### Assistant:" for i in en + es + zh)
    assert {i.source for i in es} == {"alpaca_eval:human"}


def test_omgeval_lines_line_up_with_alpaca_eval_indices(config: TaskOptions, shared_dir: Path):
    task = TASKS.get("chat")
    small = config.model_copy(update={"sample_size": None})
    en = {i.id: i.instruction for i in task.build_items(small, "en", seed=42)}
    zh = {i.id: i.instruction for i in task.build_items(small, "zh", seed=42)}
    es = {i.id: i.instruction for i in task.build_items(small, "es", seed=42)}
    assert len(en) == 804
    english = json.loads((shared_dir / "data/alpaca_eval/alpaca_eval_gpt4_1106_preview_outputs.json").read_text())
    assert en["alpaca_eval/170"] == english[170]["instruction"].strip()
    # Around the gap and at the end, the translations are of the same instructions.
    assert (
        "twenty names of famous horses" in en["alpaca_eval/170"]
        and "veinte nombres de caballos" in es["alpaca_eval/170"]
    )
    assert "名马" in zh["alpaca_eval/170"]
    assert "symphony concert review" in en["alpaca_eval/804"] and "交响乐" in zh["alpaca_eval/804"]
    assert "MFCC" in en["alpaca_eval/166"] and "MFCC" in zh["alpaca_eval/166"] and "MFCC" in es["alpaca_eval/166"]


def test_languages_without_human_prompts_are_translated(config: TaskOptions):
    task = TASKS.get("chat")
    calls = []

    def translate(texts, source, target):
        calls.append((source, target, len(texts)))
        return [f"[{target}] {t}" for t in texts]

    small = config.model_copy(update={"sample_size": 5, "prompt_sets": ["alpaca_eval", "oasst_prompts"]})
    de = task.build_items(small, "de", seed=42, translator=Translator(translate, "test"))
    en = task.build_items(small, "en", seed=42)
    assert calls == [("en", "de", 5), ("en", "de", 5)]
    assert [i.id for i in de] == [i.id for i in en]
    assert all(d.instruction == f"[de] {e.instruction}" for d, e in zip(de, en, strict=True))
    assert {i.source for i in de} == {"alpaca_eval:mt", "oasst_prompts:mt"}
    assert task.hook_module.needs_translation(small, "de") and not task.hook_module.needs_translation(small, "es")
    with pytest.raises(FailedPrecondition, match="need the judge service's Translate"):
        task.build_items(small, "de", seed=42)


def test_oasst_prompts_aligned_by_id(config: TaskOptions):
    task = TASKS.get("chat")
    oasst = config.model_copy(update={"prompt_sets": ["oasst_prompts"], "sample_size": 10})
    by_lang = {lang: task.build_items(oasst, lang, seed=42) for lang in ("en", "fr", "bg", "ru")}
    assert len({tuple(i.id for i in items) for items in by_lang.values()}) == 1
    assert len(by_lang["fr"]) == 10 and {i.source for i in by_lang["bg"]} == {"oasst_prompts:human"}
    assert task.graded_by == "judge"
    with pytest.raises(NotImplementedError):
        task.score(by_lang["en"][0], "an answer")
