"""Machine-translated mixes (§5.1) and chat prompts through the real judge service's Translate over gRPC.

The judge runs for real (`services.judge.main.build` on the shared runtime); only the LLM behind it is
scripted: a loopback OpenAI-compatible server that "translates" by tagging the text with the target
language, so the test can see which text went where.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flows.config import parse_config
from flows.data.build import build_eval_sets, build_mixes, read_eval_set, read_mix
from flows.data.labelling import core_labeller
from flows.data.translation import judge_translator
from services.common.errors import FailedPrecondition
from services.common.store import open_store
from services.judge.client import JudgeClient
from tests.fixtures.judge import Error, ReceivedRequest, Reply, ScriptedOpenAIServer, running_judge


def tagging_llm(request: ReceivedRequest) -> Reply:
    text = request.text
    body = text.split("<<<TEXT\n", 1)[1].rsplit("\nTEXT>>>", 1)[0]
    target = re.search(r"into (\w+)\.", text).group(1)
    return Reply(f"[{target}] {body}")


@pytest.fixture
def judge(judge_settings_factory):
    with (
        ScriptedOpenAIServer(default=tagging_llm) as llm,
        running_judge(judge_settings_factory(llm.base_url)) as address,
        JudgeClient(address) as client,
    ):
        yield llm, client


def study(shared: Path, build: str) -> str:
    return f"""
name: mt-test
base_models: [{{name: m, model: ./m}}]
data:
  conversations: {{source: {shared}/data/oasst/qlora_oa_questions.jsonl}}
  mixes: {{n: 40, k: 5, build: {build}}}
evaluation:
  tasks:
    chat:
      languages: [de]
      sample_size: 4
      alpaca_eval: {shared}/data/alpaca_eval/alpaca_eval_gpt4_1106_preview_outputs.json
"""


@pytest.mark.slow
def test_mt_mixes_and_chat_prompts_through_the_judge(tmp_path: Path, shared_dir: Path, lid_identifier, judge):
    llm, client = judge
    config = parse_config(study(shared_dir, "[mono, multi-3-mt]"))
    store = open_store(tmp_path.as_uri())
    translator = judge_translator(client, "openai", "gpt-3.5-turbo", run_id="mt-test")
    labeller = core_labeller(lid_identifier)
    mono, mt = build_mixes(config.data, store, labeller, translator)
    assert mt.manifest.counts == {"en": 30, "es": 5, "ru": 5} and mt.manifest.translator == "judge:openai/gpt-3.5-turbo"
    rows = read_mix(store, mt)
    mono_text = {r["id"]: r["text"] for r in read_mix(store, mono)}
    for row in (r for r in rows if r["origin"] == "mt"):
        tag = {"es": "[Spanish] ", "ru": "[Russian] "}[row["lang"]]
        source = mono_text[row["source_id"]]  # translated from an English Mono row
        # Turn by turn: the role markers never went through the model and every turn came back tagged.
        assert row["text"].count("### Human: ") == source.count("### Human: ")
        assert all(part.startswith(tag) for part in re.split(r"### (?:Human|Assistant): ", row["text"])[1:])
    requests = llm.count
    assert requests > 0

    # Rebuilding makes no request; a new mix reusing the Spanish block is answered by the judge's cache.
    build_mixes(config.data, store, labeller, translator)
    multi2 = parse_config(study(shared_dir, "[multi-2-mt]"))
    [mt2] = build_mixes(multi2.data, store, labeller, translator)
    assert mt2.built and mt2.manifest.counts == {"en": 35, "es": 5}
    assert llm.count == requests

    # Chat prompts in a language with no human translation.
    [chat_de] = build_eval_sets(config.evaluation, store, translator)
    items = read_eval_set(store, chat_de)
    assert len(items) == 4 and all(
        i.instruction.startswith("[German] ") and i.source == "alpaca_eval:mt" for i in items
    )


def test_failed_translations_raise_naming_the_item(judge):
    llm, client = judge
    llm.script("Broken text", Error(400, message="bad request"))
    translator = judge_translator(client, "openai", "gpt-3.5-turbo")
    assert translator(["Good text"], "en", "de") == ["[German] Good text"]
    with pytest.raises(FailedPrecondition, match=r"failed for 1 of 2 texts; first: item 1"):
        translator(["Good text", "Broken text"], "en", "de")
