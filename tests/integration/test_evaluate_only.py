"""`polyglot eval`'s flow: a study's `evaluate_models` (the tiny random base model as it is, and with a LoRA
adapter from the S3 store) go through eval sets, evaluation, aggregate and report on real Prefect and real
services on loopback (the generator and lid fixtures, the judge on the scripted OpenAI endpoint). No mix is
built, and the trainer's address, a listening socket, is never contacted.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import textwrap
from pathlib import Path

import pytest

from tests.fixtures.judge import running_judge

pytestmark = pytest.mark.slow


def study_yaml(shared: Path, store: Path, tokenizer: Path, adapter: str) -> str:
    return textwrap.dedent(f"""\
        name: evaluate-only
        artifact_store: file://{store}
        base_models:
          - name: tiny-llama
            dtype: float32
            tiny_random:
              llama_config: {{vocab_size: 32000, hidden_size: 128, intermediate_size: 256, num_hidden_layers: 2,
                             num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 1024}}
              tokenizer: {tokenizer}
        evaluate_models:
          - {{name: bare, base_model: tiny-llama}}
          - {{name: lora, base_model: tiny-llama, adapter: "{adapter}"}}
        evaluation:
          tasks:
            chat:
              languages: [es]
              sample_size: 2
              sampling: {{preset: chat, max_tokens: 6}}
              alpaca_eval: {shared}/data/alpaca_eval/alpaca_eval_gpt4_1106_preview_outputs.json
              alpaca_eval_translations: {shared}/data/alpaca_eval/omgeval
            xquad:
              languages: [es]
              modes: [xx:xx]
              sample_size: 2
              sampling: {{max_tokens: 6}}
              data_dir: {shared}/data/xquad
        seeds: [0]
        judge: {{provider: openai, model: gpt-3.5-turbo}}
        report: {{formats: [markdown], figure_formats: [svg], bootstrap_samples: 100}}
        """)


@pytest.fixture
def prefect(tmp_path, monkeypatch):
    from flows.local import prefect_env

    (tmp_path / "state").mkdir()
    for name, value in prefect_env(tmp_path / "state").items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def silent_trainer():
    """A listening socket standing in for the trainer: any connection to it would wait in its backlog."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        yield listener


def test_evaluate_models_without_training(
    tmp_path, monkeypatch, prefect, shared_dir, llama2_tokenizer_dir, generator_service, tiny_lora_uri,
    s3_server, lid_service, openai_server, judge_settings_factory, silent_trainer,
):  # fmt: skip
    from flows.config import load_config
    from flows.evaluate_only import evaluate_only
    from flows.samples import find_samples
    from services.common.store import open_store

    for name, value in s3_server.env().items():  # the adapter's identity reads its hashes from the store
        monkeypatch.setenv(name, value)
    study = tmp_path / "study.yaml"
    study.write_text(study_yaml(shared_dir, tmp_path / "store", llama2_tokenizer_dir, tiny_lora_uri))
    with running_judge(judge_settings_factory(openai_server.base_url)) as judge:
        overrides = {
            "services.generator": generator_service.address,
            "services.lid": lid_service,
            "services.judge": judge,
            "services.trainer": f"127.0.0.1:{silent_trainer.getsockname()[1]}",
        }
        paths = evaluate_only(
            str(study), {"tiny-llama": str(generator_service.model_dir)}, str(tmp_path / "report"), overrides
        )

    served = generator_service.generator.adapters.loaded()  # the lora was served (under any URI of its content)
    assert any(tiny_lora_uri == a.uri or tiny_lora_uri in a.spellings for a in served)
    cfg = load_config(study, overrides)
    assert {s["mix"] for s in find_samples(open_store(cfg.artifact_store), cfg)} == {"bare", "lora"}
    with pytest.raises(BlockingIOError):
        silent_trainer.accept()  # nobody ever connected to the trainer
    store = tmp_path / "store"
    assert not (store / "datasets").exists()  # no mix, no labelled conversations
    shards = sorted(p.relative_to(store / "results").parts[:2] for p in (store / "results").rglob("*.jsonl")
                    if not p.name.endswith(".samples.jsonl"))  # fmt: skip
    assert shards == [("tiny-llama", "bare")] * 2 + [("tiny-llama", "lora")] * 2  # chat, xquad each
    report = Path(paths["md"]).read_text()
    assert "## Chat" in report and "## XQuAD" in report
    assert "| language | bare | lora |" in report  # the models are the mix columns
    chat_shards = [p for p in (store / "results").rglob("chat/**/*.jsonl") if not p.name.endswith(".samples.jsonl")]
    chat = [json.loads(line) for p in chat_shards for line in p.read_text().splitlines()]
    assert len(chat) == 4 and all("helpfulness" in r["metrics"] for r in chat)  # graded (or gated) by the judge


def test_an_adapters_key_is_its_content(tmp_path, tiny_lora_dir):
    """A copy elsewhere is the same model; one changed byte is another."""
    from flows.config import load_config
    from flows.config.evaluated import EvaluatedModel
    from flows.evaluate_only import as_tuned

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml")
    copy = shutil.copytree(tiny_lora_dir, tmp_path / "copy")

    def key(adapter: Path | None) -> str:
        entry = EvaluatedModel(name="m", base_model=cfg.base_models[0].name, adapter=adapter and str(adapter))
        return as_tuned(cfg, entry, "ref").key

    assert key(tiny_lora_dir) == key(copy) != key(None)
    with (copy / "adapter_config.json").open("a") as handle:
        handle.write(" ")
    assert key(copy) != key(tiny_lora_dir)
    assert os.path.basename(key(None)).isalnum() and key(None).startswith("models/")
