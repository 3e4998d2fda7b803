"""Every item of a shard is accounted for: a chat shard whose judge fails some items, through the real judge
service (its OpenAI provider on the scripted endpoint), then the aggregate, the report step and `polyglot
samples`. The generator and lid are stand-ins: what they say is the test's script, not a model's output.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from flows.aggregate import aggregate
from flows.cli import app
from flows.config import load_config
from flows.data.build import Built
from flows.data.manifest import DatasetManifest
from flows.evals.items import EvalItem, dumps_items
from flows.keys import shard_samples
from flows.results import Outcome
from flows.steps import Shard, TunedModel, evaluate_shard, read_shard
from services.common.errors import FailedPrecondition, ItemError
from services.common.store import open_store
from services.generator.records import Completion
from services.judge.client import JudgeClient
from services.lid.core import Identification, LanguageCheck, Prediction
from tests.fixtures.judge import Error, Reply, running_judge

REPO = Path(__file__).resolve().parents[2]
N_ITEMS = 8
FAILING, UNPARSABLE, REFUSED = {1, 5}, 3, 6  # item indices: judge errors, a judge without a verdict, a refused prompt


def reply(i: int) -> str:
    return f"Respuesta número {i}: una explicación clara y útil en español."


class Generator:
    """Answers each prompt with `reply(i)`, and refuses item REFUSED as invalid."""

    def generate_all(self, prompts, params, **_):
        out = []
        for index, prompt in enumerate(prompts):
            i = int(prompt.rsplit("#", 1)[1])
            if i == REFUSED:
                error = ItemError("INVALID_ARGUMENT", "prompt longer than the model's context", "prompts[0]")
                out.append(Completion(index, "", "error", error=error))
            else:
                out.append(Completion(index, reply(i), "stop", prompt_tokens=7, completion_tokens=11))
        return out


class Lid:
    """Everything is Spanish, every line passes."""

    spanish = Prediction("es", "Latn", "__label__es", 0.97)

    def identify(self, texts, **_):
        return [Identification(i, (self.spanish,)) for i in range(len(texts))]

    def check_language(self, items, **_):
        return [LanguageCheck(i, 1.0, 1, 1, self.spanish, True) for i in range(len(items))]


@pytest.fixture
def judged_shard(tmp_path, openai_server, judge_settings_factory):
    """A stored chat shard of N_ITEMS in es, with two judge errors, one unparsable verdict, one refusal."""
    for i in FAILING:
        openai_server.script(reply(i), Error(422), repeat_last=True)
    openai_server.script(reply(UNPARSABLE), Reply("I would rather not say."), repeat_last=True)
    store_uri = (tmp_path / "store").as_uri()
    cfg = load_config(
        REPO / "configs" / "smoke.yaml",
        {"judge.provider": "openai", "judge.model": "gpt-3.5-turbo", "artifact_store": store_uri},
    )
    store = open_store(store_uri)
    items = [
        EvalItem(id=f"q{i}", task="chat", language="es", prompt=f"### Human: pregunta #{i}", instruction=f"#{i}")
        for i in range(N_ITEMS)
    ]
    manifest = DatasetManifest(
        kind="evalset", name="chat/es", key="evalsets/chat/es/test", data="items.jsonl", data_sha256="0" * 64,
        rows=N_ITEMS, counts={"es": N_ITEMS}, inputs_sha256="0" * 64, version=1, task="chat", language="es",
    )  # fmt: skip
    store.put_bytes(f"{manifest.key}/{manifest.data}", dumps_items(items))
    model = TunedModel("tiny-llama", "mono", "models/tiny-llama/mono/test", adapter_uri="", job_id="none")
    shard = Shard(model, "chat", "es", 0, Built(manifest, store.uri(manifest.key), built=True))
    settings = judge_settings_factory(openai_server.base_url, max_attempts=2)
    with running_judge(settings) as address, JudgeClient(address) as judge:
        key = evaluate_shard(cfg, store, SimpleNamespace(generator=Generator(), lid=Lid(), judge=judge), shard)
    return cfg, store, key


def test_every_item_has_a_record_an_outcome_and_a_sample(judged_shard):
    cfg, store, key = judged_shard
    records = read_shard(store, key)
    outcome = {r.item_id: r.outcome for r in records}
    assert len(records) == N_ITEMS
    assert {i for i in range(N_ITEMS) if outcome[f"q{i}"] is Outcome.ERROR} == FAILING
    assert outcome[f"q{UNPARSABLE}"] is Outcome.UNPARSABLE and outcome[f"q{REFUSED}"] is Outcome.REFUSED
    by_id = {r.item_id: r for r in records}
    assert "helpfulness" not in by_id["q1"].metrics and by_id["q1"].metrics["lang_match"] == 1.0  # lid still ran
    assert by_id["q0"].metrics["helpfulness"] == 4.0 and by_id[f"q{REFUSED}"].metrics == {}

    samples = [json.loads(line) for line in store.get_bytes(shard_samples(key)).decode().splitlines()]
    assert [s["item_id"] for s in samples] == [r.item_id for r in records]
    graded = samples[0]
    assert graded["reply"] == reply(0) and graded["finish_reason"] == "stop" and graded["completion_tokens"] == 11
    assert graded["reply_language"][0]["raw_label"] == "__label__es" and graded["judge"]["score"] == 4
    assert graded["judge"]["outcome"] == "GRADED" and "reasoning" in graded["judge"]
    assert samples[1]["judge"]["error"]["code"] and samples[1]["outcome"] == "error"
    assert (
        samples[REFUSED]["error"].endswith("prompt longer than the model's context") and "judge" not in samples[REFUSED]
    )


def test_above_the_error_share_the_report_step_fails_naming_the_share_and_keeps_results(judged_shard, tmp_path):
    from flows.study import report

    cfg, store, key = judged_shard
    aggregated = aggregate(read_shard(store, key), cfg.report, shards=[key])
    helpfulness = next(r for r in aggregated.rows if r.metric == "helpfulness")
    assert helpfulness.n_obs == N_ITEMS - 4  # graded items only: the mean is as before
    assert helpfulness.outcomes == {"ok": 4, "unparsable": 1, "error": 2, "refused": 1}
    assert helpfulness.mean == 4.0

    with pytest.raises(FailedPrecondition) as failed:
        report.fn(cfg, store, aggregated, "aggregates/smoke/test.json", [], [], tmp_path / "over")
    assert "chat: 2 of 8 items (25.0%) ended in error" in str(failed.value)
    assert (
        "tiny-llama/mono/chat/es (2 of 8)" in str(failed.value) and failed.value.field == "evaluation.max_error_share"
    )
    assert any(o.key.endswith("/report.md") for o in store.list("reports/"))  # kept, to look at

    lenient = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"max_error_share": 0.5})})
    paths = report.fn(lenient, store, aggregated, "aggregates/smoke/test.json", [], [], tmp_path / "under")
    md = Path(paths["md"]).read_text()
    link = re.search(r"4\.00 \[4\.00, 4\.00\] · \[n=4 · 1 unparsable · 2 error · 1 refused\]\(([^)]+)\)", md)
    assert link, md
    linked = (tmp_path / "under" / link.group(1)).read_text().splitlines()
    assert len(linked) == N_ITEMS and json.loads(linked[1])["outcome"] == "error"
    assert "1 unparsable · 2 error · 1 refused</a>" in Path(paths["html"]).read_text()


def test_polyglot_samples_filters_by_outcome(judged_shard):
    cfg, store, key = judged_shard
    uri = cfg.artifact_store
    result = CliRunner().invoke(app, ["samples", uri, "--task", "chat", "--outcome", "error", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(s["item_id"] for s in lines) == ["q1", "q5"]
    table = CliRunner().invoke(app, ["samples", uri, "--language", "es", "--outcome", "refused"])
    assert table.exit_code == 0 and "q6" in table.stdout and "refused" in table.stdout
    bad = CliRunner().invoke(app, ["samples", uri, "--outcome", "lost"])
    assert bad.exit_code == 2
