"""XNLI items are exactly lm-evaluation-harness' requests for `xnli_<lang>`."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

from flows.evals import TASKS
from flows.evals.language_data import languages
from flows.evals.xnli import LABELS, continuations, read_tsv


def lm_eval_choices(language: str, premise: str, hypothesis: str) -> list[str]:
    """Render lm-eval's own `doc_to_choice` for the language (the installed lm-eval's YAML), plus its
    default target delimiter, as lm-eval builds multiple-choice requests."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None:
        pytest.skip("lm-eval is not installed (extra `lm-eval`)")
    import jinja2

    path = Path(next(iter(spec.submodule_search_locations))) / "tasks" / "xnli" / f"xnli_{language}.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    rendered = jinja2.Template(config["doc_to_choice"]).render(premise=premise, hypothesis=hypothesis)
    return [" " + choice for choice in ast.literal_eval(rendered)]


@pytest.mark.parametrize("language", languages("xnli"))
def test_continuations_match_lm_eval(shared_dir: Path, language: str):
    premise, hypothesis, _ = read_tsv(shared_dir / f"data/xnli/xnli_dev-{language}.tsv")[7]
    assert continuations(premise, hypothesis, language) == lm_eval_choices(language, premise, hypothesis)


def test_items_are_parallel_and_scored_by_argmax(shared_dir: Path):
    config = TASKS.get("xnli").options(languages=["en", "de"], sample_size=5, data_dir=shared_dir / "data/xnli")
    task = TASKS.get("xnli")
    en = task.build_items(config, "en", seed=42)
    de = task.build_items(config, "de", seed=42)
    assert [i.id for i in en] == [i.id for i in de] and len(en) == 5
    assert [i.label for i in en] == [i.label for i in de]  # the same pairs, translated
    item = de[0]
    assert item.prompt == "" and len(item.choices) == 3 and item.answers == [LABELS[item.label]]
    assert ", richtig? Ja, " in item.choices[0] and ", richtig? Auch, " in item.choices[1]
    logprobs = [-9.0, -9.0, -9.0]
    logprobs[item.label] = -1.0
    assert task.score(item, logprobs) == {"accuracy": 1.0}
    logprobs[(item.label + 1) % 3] = -0.5
    assert task.score(item, logprobs) == {"accuracy": 0.0}
    with pytest.raises(ValueError):
        task.score(item, [-1.0])
    assert task.method == "loglikelihood" and task.metric_names() == ("accuracy",)
    every_item = task.options(languages=["en"], data_dir=shared_dir / "data/xnli")
    full = task.build_items(every_item, "en", seed=42)
    assert len(full) == 2490
