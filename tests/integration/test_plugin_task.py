"""A task from outside the package, declared in one YAML file plus one hook module, runs like the built-ins.

The toy task lives only in a temporary directory that the study file names in `evaluation.include_paths`.
It goes through the real pipeline with no file of the package edited: the planner, eval-set building, shard
planning, evaluation through a real generator (the tiny random Llama on loopback gRPC), the aggregate, the
figures and the report. Training is left out: both "mixes" evaluate the base model.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

TASK_YAML = """\
name: toy-echo
label: Toy echo
description: Asks the model to repeat a word; scores the share of the word's letters in the reply.
order: 50
method: generate
graded_by: reference
hook: toy_echo.py
metrics:
  - {name: echoed_letters, label: "Letters of the word echoed", range: [0, 1]}
languages: [en, es]
defaults:
  sample_size: 3
  sampling: constrained
planner: {prompt_tokens: 20, output_tokens: 4, items_available: 5}
"""

HOOK = """
from pydantic import Field

from flows.evals.items import EvalItem
from flows.evals.sampling import sample
from flows.evals.spec import TaskOptions


class Options(TaskOptions):
    words: list[str] = Field(["apple", "river", "stone", "cloud", "bread"], description="Words to echo.")


def inputs(options, language, translator_model=""):
    return {}


def build_items(options, language, *, seed, translator=None):
    ids = [f"w{i}" for i in range(len(options.words))]
    return [
        EvalItem(
            id=i,
            task="toy-echo",
            language=language,
            prompt=f"### Human: Say {options.words[int(i[1:])]}. ### Assistant:",
            answers=[options.words[int(i[1:])]],
        )
        for i in sample(ids, options.sample_size, seed, "toy-echo")
    ]


def score(item, output):
    word = item.answers[0]
    return {"echoed_letters": sum(c in output for c in word) / len(word)}
"""


def study_yaml(shared_dir: Path, store: Path, tokenizer: Path) -> str:
    return textwrap.dedent(f"""\
        name: plugin
        artifact_store: file://{store}
        base_models:
          - name: tiny-llama
            dtype: float32
            tiny_random:
              llama_config: {{vocab_size: 32000, hidden_size: 128, intermediate_size: 256, num_hidden_layers: 2,
                             num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 1024}}
              tokenizer: {tokenizer}
        data:
          mixes: {{build: [mono, multi-2]}}
        evaluation:
          include_paths: [tasks]
          tasks:
            toy-echo:
              sample_size: 2
              sampling: {{max_tokens: 4}}
            xnli:
              languages: [en]
              sample_size: 2
              data_dir: {shared_dir / "data/xnli"}
        seeds: [0, 42]
        report: {{formats: [html, markdown], figure_formats: [png], bootstrap_samples: 100}}
        """)


@pytest.fixture(scope="module")
def generator_address(tiny_llama_dir, tmp_path_factory):
    from services.common.inprocess import serve_in_thread
    from services.generator.factory import create_generator
    from services.generator.main import registrations
    from tests.fixtures.generator import generator_settings

    settings = generator_settings(tiny_llama_dir, "hf", tmp_path_factory.mktemp("adapter-cache"))
    with serve_in_thread(registrations(create_generator(settings))) as address:
        yield address


def test_a_plugin_task_runs_through_plan_evaluate_aggregate_report(
    tmp_path, shared_dir, llama2_tokenizer_dir, generator_address, lid_identifier
):
    from flows.aggregate import aggregate
    from flows.config import load_config
    from flows.data.build import build_eval_sets
    from flows.figures import render_figures
    from flows.plan import plan_study
    from flows.report import render_report
    from flows.steps import TunedModel, evaluate_shard, read_shard
    from flows.study import plan_shards
    from services.common.store import open_store
    from services.generator.client import GeneratorClient

    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "toy-echo.yaml").write_text(TASK_YAML)
    (tmp_path / "tasks" / "toy_echo.py").write_text(HOOK)
    study_file = tmp_path / "study.yaml"
    study_file.write_text(study_yaml(shared_dir, tmp_path / "store", llama2_tokenizer_dir))

    cfg = load_config(study_file)
    assert list(cfg.evaluation.tasks) == ["xnli", "toy-echo"]  # report order: the spec's `order`
    assert cfg.evaluation.tasks["toy-echo"].languages == ["en", "es"]  # the benchmark's coverage

    plan = plan_study(cfg)
    toy = next(e for e in plan.evaluations if e.task == "toy-echo")
    assert (toy.items_per_language, toy.seeds, toy.generations) == (2, 2, 2 * 2 * 2 * 2)

    store = open_store(cfg.artifact_store)
    evalsets = build_eval_sets(cfg.evaluation, store)
    models = [
        TunedModel("tiny-llama", mix, f"models/tiny-llama/{mix}/base", adapter_uri="", job_id="none")
        for mix in ("mono", "multi-2")
    ]
    shards = plan_shards(cfg, models, evalsets)
    assert {s.seed for s in shards if s.task == "xnli"} == {0}  # log-likelihood: one seed
    with GeneratorClient(generator_address, timeout=300) as generator:
        clients = SimpleNamespace(generator=generator, lid=lid_identifier)  # lid: the replies' line checks
        keys = [evaluate_shard(cfg, store, clients, shard) for shard in shards]
    records = [record for key in keys for record in read_shard(store, key)]

    aggregated = aggregate(records, cfg.report)
    toy_rows = [r for r in aggregated.rows if r.task == "toy-echo"]
    assert {(r.mix, r.language, r.metric) for r in toy_rows} == {
        (mix, lang, "echoed_letters") for mix in ("mono", "multi-2") for lang in ("en", "es")
    }
    assert all(0.0 <= r.mean <= 1.0 and r.n_seeds == 2 for r in toy_rows)

    out = tmp_path / "report"
    figures = render_figures(cfg, aggregated.rows, out / "figures")
    toy_figure = next(f for f in figures if f.task == "toy-echo")
    assert Path(toy_figure.paths["png"]).is_file()
    assert toy_figure.title == "tiny-llama · Toy echo · Letters of the word echoed"
    written = render_report(cfg, aggregated.rows, aggregated.tests, figures, {}, {}, out, versions=[])
    md = written["md"].read_text()
    assert "## Toy echo" in md and md.index("## XNLI") < md.index("## Toy echo")
    assert 'id="task-toy-echo"' in written["html"].read_text()
    json.dumps(aggregated.to_json())  # the aggregate artifact stays plain JSON
