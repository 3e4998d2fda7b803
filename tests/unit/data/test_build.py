"""Building mixes and eval sets into a real (local) artifact store: keys, manifests, idempotency, bytes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from flows.config import parse_config
from flows.data.build import (
    EvalSetBuilder,
    MixBuilder,
    build_eval_sets,
    build_mixes,
    read_eval_set,
    read_mix,
)
from flows.data.labelling import Labeller, core_labeller
from flows.data.translation import Translator
from flows.keys import DATA_VERSION
from services.common.errors import FailedPrecondition
from services.common.store import open_store

ALL_MIXES = "[mono, multi-2, multi-3, multi-4, multi-5, multi-6, full, 'leave-one-out:es', multi-3-mt]"


def study_yaml(shared: Path, n: int = 40, k: int = 5, build: str = ALL_MIXES) -> str:
    return f"""
name: build-test
base_models: [{{name: m, model: ./m}}]
data:
  conversations: {{source: {shared}/data/oasst/qlora_oa_questions.jsonl}}
  mixes: {{n: {n}, k: {k}, build: {build}}}
evaluation:
  tasks:
    chat:
      languages: [en, es, de]
      sample_size: 3
      prompt_sets: [alpaca_eval, oasst_prompts]
      alpaca_eval: {shared}/data/alpaca_eval/alpaca_eval_gpt4_1106_preview_outputs.json
      alpaca_eval_translations: {shared}/data/alpaca_eval/omgeval
      oasst_prompts: {shared}/data/oasst_prompts
    xquad: {{languages: [en, de], sample_size: 2, data_dir: {shared}/data/xquad}}
    xnli: {{languages: [en, zh], sample_size: 3, data_dir: {shared}/data/xnli}}
"""


class CountingLabeller:
    """The real lid core, counting how many texts it was asked about."""

    def __init__(self, labeller: Labeller):
        self.inner, self.texts = labeller, 0

    def labeller(self) -> Labeller:
        def identify(texts):
            self.texts += len(texts)
            return self.inner.identify(texts)

        return Labeller(identify, self.inner.model, 256)


def tagging_translator(calls: list | None = None) -> Translator:
    """A deterministic stand-in for the judge's LLM translation (it needs an LLM): tags each text."""

    def translate(texts, source, target):
        if calls is not None:
            calls.append((len(texts), source, target))
        return [f"<{target}> {text}" for text in texts]

    return Translator(translate, "test:tagger")


@pytest.fixture(scope="module")
def labeller(lid_identifier) -> Labeller:
    return core_labeller(lid_identifier)


def snapshot(store) -> dict[str, tuple[str, object]]:
    return {info.key: (info.sha256, info.modified) for info in store.list("")}


def test_mixes_have_their_counts_manifests_and_provenance(tmp_path: Path, shared_dir: Path, labeller):
    study = parse_config(study_yaml(shared_dir))
    store = open_store(tmp_path.as_uri())
    built = {b.name: b for b in build_mixes(study.data, store, labeller, tagging_translator())}
    assert list(built) == [
        "mono",
        "multi-2",
        "multi-3",
        "multi-4",
        "multi-5",
        "multi-6",
        "full",
        "leave-one-out:es",
        "multi-3-mt",
    ]
    assert built["multi-4"].manifest.counts == {"en": 25, "de": 5, "es": 5, "ru": 5}
    assert built["multi-3-mt"].manifest.counts_by_origin == {"mt": 10, "native": 30}
    assert built["multi-3-mt"].manifest.translator == "test:tagger"
    for b in built.values():
        rows = read_mix(store, b)
        assert b.built and b.uri == store.uri(b.data_key) and b.key.startswith(f"datasets/{b.name.replace(':', '-')}/")
        assert len(rows) == b.manifest.rows and Counter(r["lang"] for r in rows) == Counter(b.manifest.counts)
        assert all(r["text"].startswith("### Human: ") and "### Assistant: " in r["text"] for r in rows)
        assert all(r["lid_prob"] >= 0.8 for r in rows if r["origin"] == "native")  # the threshold holds
        m = b.manifest
        assert (m.seed, m.lid_threshold, m.version) == (42, 0.8, DATA_VERSION)
        assert m.lid_model == labeller.model and m.source == "qlora_oa_questions.jsonl" and len(m.source_sha256) == 64
        assert store.get_json(f"{b.key}/manifest.json") == m.to_json()
    assert built["multi-3"].manifest.recipe == {"n": 40, "k": 5, "languages": ["es", "ru"]}
    mt_rows = [r for r in read_mix(store, built["multi-3-mt"]) if r["origin"] == "mt"]
    assert {r["lang"] for r in mt_rows} == {"es", "ru"}
    assert all(
        r["text"].startswith(f"### Human: <{r['lang']}> ") and f"### Assistant: <{r['lang']}> " in r["text"]
        for r in mt_rows
    )
    assert "es" not in built["leave-one-out:es"].manifest.counts
    assert built["full"].manifest.rows == sum(built["full"].manifest.counts.values()) > 800
    # What the trainer accepts at submit time: every row a complete, alternating Guanaco conversation.
    from services.trainer.dataset import validate_dataset

    for b in built.values():
        checked = validate_dataset(b.uri)
        assert (
            checked.rows == b.manifest.rows and checked.manifest_sha256 == store.stat(f"{b.key}/manifest.json").sha256
        )


def test_second_build_does_nothing(tmp_path: Path, shared_dir: Path, labeller):
    study = parse_config(study_yaml(shared_dir))
    store = open_store(tmp_path.as_uri())
    counting, calls = CountingLabeller(labeller), []
    first = build_mixes(study.data, store, counting.labeller(), tagging_translator(calls))
    assert counting.texts == 953 and calls
    before, calls_before = snapshot(store), len(calls)
    second = build_mixes(study.data, store, counting.labeller(), tagging_translator(calls))
    assert [b.built for b in second] == [False] * len(first)
    assert [b.manifest for b in second] == [b.manifest for b in first]
    assert snapshot(store) == before  # not one object rewritten
    assert counting.texts == 953 and len(calls) == calls_before  # no LID, no translation


def test_same_inputs_give_byte_identical_artifacts_in_another_store(tmp_path: Path, shared_dir: Path, labeller):
    study = parse_config(study_yaml(shared_dir, build="[mono, multi-3, full]"))
    a, b = open_store((tmp_path / "a").as_uri()), open_store((tmp_path / "b").as_uri())
    built_a = build_mixes(study.data, a, labeller)
    built_b = build_mixes(study.data, b, labeller)
    for x, y in zip(built_a, built_b, strict=True):
        assert x.key == y.key
        assert a.get_bytes(x.data_key) == b.get_bytes(y.data_key)
        assert a.get_bytes(f"{x.key}/manifest.json") == b.get_bytes(f"{y.key}/manifest.json")


def test_a_changed_recipe_rebuilds_only_what_depends_on_it(tmp_path: Path, shared_dir: Path, labeller):
    store = open_store(tmp_path.as_uri())
    counting = CountingLabeller(labeller)
    k5 = build_mixes(
        parse_config(study_yaml(shared_dir, k=5, build="[mono, multi-2]")).data, store, counting.labeller()
    )
    k6 = build_mixes(
        parse_config(study_yaml(shared_dir, k=6, build="[mono, multi-2]")).data, store, counting.labeller()
    )
    assert k6[0].key == k5[0].key and not k6[0].built  # Mono does not depend on K
    assert k6[1].key != k5[1].key and k6[1].built and k6[1].manifest.counts == {"en": 34, "es": 6}
    assert counting.texts == 953  # the labelled source was reused, not labelled again
    seed7 = parse_config(study_yaml(shared_dir, build="[mono]").replace("mixes: {", "mixes: {seed: 7, "))
    assert MixBuilder(seed7.data, store, labeller).mix_key(seed7.data.mixes.specs()[0]) != k5[0].key


def test_mt_mix_without_a_translator_fails_before_any_work(tmp_path: Path, shared_dir: Path, labeller):
    study = parse_config(study_yaml(shared_dir, build="[mono, multi-2-mt]"))
    store = open_store(tmp_path.as_uri())
    with pytest.raises(FailedPrecondition, match="multi-2-mt need the judge service's Translate"):
        build_mixes(study.data, store, labeller)
    assert list(store.list("")) == []


def test_eval_sets_are_built_once_with_parallel_items(tmp_path: Path, shared_dir: Path):
    study = parse_config(study_yaml(shared_dir))
    store = open_store(tmp_path.as_uri())
    calls: list = []
    built = {b.name: b for b in build_eval_sets(study.evaluation, store, tagging_translator(calls))}
    assert list(built) == ["chat/en", "chat/es", "chat/de", "xquad/en", "xquad/de", "xnli/en", "xnli/zh"]
    # German chat prompts exist in neither human set: both were machine-translated, in one call each.
    assert calls == [(3, "en", "de"), (3, "en", "de")]
    chat = {lang: read_eval_set(store, built[f"chat/{lang}"]) for lang in ("en", "es", "de")}
    assert [i.id for i in chat["en"]] == [i.id for i in chat["es"]] == [i.id for i in chat["de"]]
    assert len(chat["en"]) == 6  # 3 per prompt set
    assert {i.source for i in chat["de"]} == {"alpaca_eval:mt", "oasst_prompts:mt"}
    assert {i.source for i in chat["es"]} == {"alpaca_eval:human", "oasst_prompts:human"}
    assert built["chat/de"].manifest.translator == "test:tagger" and built["chat/es"].manifest.translator == ""
    xquad = read_eval_set(store, built["xquad/de"])
    assert [i.mode for i in xquad] == ["en:xx", "en:xx", "xx:xx", "xx:xx"]
    assert built["xnli/zh"].manifest.rows == 3 and built["xnli/zh"].manifest.inputs["data"]
    before = snapshot(store)
    again = build_eval_sets(study.evaluation, store, tagging_translator(calls))
    assert not any(b.built for b in again) and snapshot(store) == before and len(calls) == 2


def test_eval_set_keys_follow_items_not_decoding_or_paths(tmp_path: Path, shared_dir: Path):
    base = parse_config(study_yaml(shared_dir))
    store = open_store(tmp_path.as_uri())
    key = EvalSetBuilder(base.evaluation, store).key("xquad", "de")[0]
    decoding = parse_config(
        study_yaml(shared_dir).replace(
            "sample_size: 2,", "sample_size: 2, sampling: {preset: constrained, max_tokens: 9},"
        )
    )
    assert EvalSetBuilder(decoding.evaluation, store).key("xquad", "de")[0] == key
    bigger = parse_config(study_yaml(shared_dir).replace("sample_size: 2,", "sample_size: 3,"))
    assert EvalSetBuilder(bigger.evaluation, store).key("xquad", "de")[0] != key
    # The same files elsewhere give the same key: content hashes stand in for paths.
    moved = tmp_path / "xquad"
    moved.mkdir()
    (moved / "xquad.de.json").write_bytes((shared_dir / "data/xquad/xquad.de.json").read_bytes())
    relocated = parse_config(study_yaml(shared_dir).replace(f"data_dir: {shared_dir}/data/xquad", f"data_dir: {moved}"))
    assert EvalSetBuilder(relocated.evaluation, store).key("xquad", "de")[0] == key
    assert json.loads(json.dumps(EvalSetBuilder(base.evaluation, store).identity("xquad", "de")))["settings"] == {
        "sample_size": 2,
        "modes": ["en:xx", "xx:xx"],
    }
