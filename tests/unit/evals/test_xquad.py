"""XQuAD items: en:xx and xx:xx prompts, the forced prefix in the target language, gold answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.evals import TASKS, TaskOptions
from flows.evals.language_data import entry
from flows.evals.xquad import read_squad_json
from services.common.errors import InvalidArgument, NotFound


@pytest.fixture
def config(shared_dir: Path) -> TaskOptions:
    return TASKS.get("xquad").options(languages=["en", "de", "zh"], sample_size=3, data_dir=shared_dir / "data/xquad")


def test_modes_and_forced_prefix(config: TaskOptions):
    task = TASKS.get("xquad")
    items = task.build_items(config, "de", seed=42)
    en_xx = [i for i in items if i.mode == "en:xx"]
    xx_xx = [i for i in items if i.mode == "xx:xx"]
    assert len(en_xx) == len(xx_xx) == 3 and [i.id for i in en_xx] == [i.id for i in xx_xx]
    for item in items:
        assert item.prompt.startswith("### Human: ") and item.prompt.endswith("### Assistant:")
        # The prefix is German in both modes; the generator appends it verbatim.
        assert item.response_prefix == " Auf Grundlage des Textes lautet die Antwort auf die Frage"
        assert item.question in item.prompt and item.answers
    assert en_xx[0].prompt.startswith("### Human: Read the passage and answer the question")
    assert "\n\nPassage: " in en_xx[0].prompt and "\n\nQuestion: " in en_xx[0].prompt
    assert xx_xx[0].prompt.startswith("### Human: Lies den Text") and "\n\nFrage: " in xx_xx[0].prompt


def test_same_questions_in_every_language_and_answers_from_the_file(config: TaskOptions, shared_dir: Path):
    task = TASKS.get("xquad")
    by_lang = {lang: task.build_items(config, lang, seed=42) for lang in config.languages}
    assert len({tuple(i.id for i in items) for items in by_lang.values()}) == 1
    gold = {q.id: q.answers for q in read_squad_json(shared_dir / "data/xquad/xquad.zh.json")}
    assert all(tuple(i.answers) == gold[i.id] for i in by_lang["zh"])
    assert by_lang["zh"][0].response_prefix == " 根据这段文字，问题的答案是"
    assert "\ufeff" not in "".join(i.prompt for items in by_lang.values() for i in items)
    assert task.build_items(config, "de", seed=7) != by_lang["de"]  # the seed draws the sample


def test_scores_through_the_task(config: TaskOptions):
    task = TASKS.get("xquad")
    item = task.build_items(config, "de", seed=42)[0]
    assert task.score(item, f" „{item.answers[0]}“, weil es im Text steht.") == {"em": 1.0, "f1": 1.0}
    assert task.score(item, " keine Ahnung") == {"em": 0.0, "f1": 0.0}


def test_missing_language_data_is_named(config: TaskOptions):
    task = TASKS.get("xquad")
    with pytest.raises(NotFound, match="xquad.sv.json"):
        task.build_items(config, "sv", seed=42)
    with pytest.raises(InvalidArgument, match="templates/xquad.yaml") as caught:
        entry("xquad", "it")
    assert caught.value.field == "evaluation.tasks.xquad.languages"
