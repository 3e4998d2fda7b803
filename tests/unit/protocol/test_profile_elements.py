"""The non-text elements of the paper profile: the judged sample's pandas draw, the stop-string post-processing,
XNLI's split and request format, the gate's comparison, the unfiltered Guanaco mix and the preflight message."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from flows.config import parse_config
from flows.config.lid import OPENLID_URL
from flows.data.labelling import LabelledConversation
from flows.data.mixes import MixPlanner
from flows.evals import TASKS
from flows.evals.sampling import draw, pandas_sample
from flows.evals.stops import PAPER_STOPS, trim_at_stops
from flows.evals.xnli import continuations, read_tsv
from flows.grading import _gate_target
from flows.preflight import protocol_files

IDS = [f"alpaca_eval/{i:03d}" for i in range(805)]
MINIMAL = "name: t\nbase_models: [{name: m, model: o/m}]\nevaluation: {tasks: {xnli: }}\n"


def test_the_judged_sample_is_pandas_sample_300_random_state_42() -> None:
    pandas = pytest.importorskip("pandas")
    expected = list(pandas.DataFrame({"id": IDS}).sample(300, random_state=42)["id"])
    assert pandas_sample(IDS, 300, 42) == expected
    assert draw(IDS, 300, 42, "chat/alpaca_eval", "pandas") == expected
    assert pandas_sample(IDS, None, 42) == IDS and pandas_sample(IDS, 900, 42) == IDS


def test_trim_at_stops_cuts_at_each_stop_in_order_and_strips_only_after_a_cut() -> None:
    assert trim_at_stops("  Paris. \n### Human: and?", PAPER_STOPS) == "Paris."
    assert trim_at_stops("A ### Assistant B ### Human: C") == "A"
    assert trim_at_stops("  no stop here  ") == "  no stop here  "  # the paper strips only what it cut
    assert len(PAPER_STOPS) == 4 and PAPER_STOPS[:2] == ("### Human:", "### Assistant:")


def test_xnli_request_formats_differ_only_by_the_target_delimiter(shared_dir: Path) -> None:
    premise, hypothesis, _ = read_tsv(shared_dir / "data/xnli/xnli_dev-de.tsv")[3]
    v04 = continuations(premise, hypothesis, "de", "lm-eval-0.4")
    v03 = continuations(premise, hypothesis, "de", "lm-eval-0.3")
    assert v04 == [" " + sentence for sentence in v03]
    assert v03[0] == f"{premise}, richtig? Ja, {hypothesis}"


def test_xnli_split_selects_its_file_and_planner_figure(shared_dir: Path, tmp_path: Path) -> None:
    task = TASKS.get("xnli")
    (tmp_path / "xnli_test-de.tsv").write_text("Ein Satz.\tNoch einer.\tneutral\n", encoding="utf-8")
    options = task.options(languages=["de"], data_dir=tmp_path, split="test", request_format="lm-eval-0.3")
    (item,) = task.build_items(options, "de", seed=42)
    assert item.choices[1] == "Ein Satz., richtig? Auch, Noch einer." and item.label == 1
    assert task.items_per_set(options, {"xnli:validation": 2490, "xnli:test": 5010}) == {"test": 5010}
    with pytest.raises(Exception, match="xnli_test-de.tsv|xnli_dev-de.tsv"):
        task.build_items(task.options(languages=["de"], data_dir=shared_dir / "data/xnli", split="test"), "de", seed=1)


def test_gate_compares_with_the_prompt_label_in_the_paper_setting() -> None:
    prompt_in_german = SimpleNamespace(predictions=[SimpleNamespace(language="de")])
    unidentified = SimpleNamespace(predictions=[])
    assert _gate_target("fr", prompt_in_german, "prompt") == "de"
    assert _gate_target("fr", prompt_in_german, "target") == "fr"
    assert _gate_target("fr", unidentified, "prompt") == "fr"


def test_full_mix_is_unfiltered_when_the_lid_filter_is_off_for_it() -> None:
    rows = [LabelledConversation(f"r{i}", "### Human: x### Assistant: y", "en", p) for i, p in enumerate((0.9, 0.5))]
    recipe = parse_config(MINIMAL).data.mixes
    assert [r.id for r in MixPlanner(rows, recipe, 0.8).plan("full").others] == ["r0"]
    assert [r.id for r in MixPlanner(rows, recipe, 0.8, filter_full=False).plan("full").others] == ["r0", "r1"]


def test_preflight_names_the_missing_openlid_file_and_its_download_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYGLOT_OPENLID_MODEL", str(tmp_path / "lid201-model.bin"))
    cfg = parse_config(MINIMAL + "lid: {model: openlid}\n")
    message = protocol_files(cfg)
    assert message is not None and "\n" not in message
    assert str(tmp_path / "lid201-model.bin") in message
    assert f"curl -fL -o {tmp_path / 'lid201-model.bin'} {OPENLID_URL}" in message
    (tmp_path / "lid201-model.bin").write_bytes(b"model")
    assert protocol_files(cfg) is None
    pinned = parse_config(MINIMAL + f"lid: {{model: openlid, sha256: '{'0' * 64}'}}\n")
    assert "has sha256" in (protocol_files(pinned) or "")


def test_keys_name_the_paper_settings_only_when_they_are_set() -> None:
    from flows import keys

    text = MINIMAL.replace("{xnli: }", "{xnli: , chat: {languages: [en]}}")
    polyglot, paper = parse_config(text), parse_config(text + "protocol: {profile: paper}\n")
    assert "append_eos" not in keys.model_identity(polyglot, "m", "o/m", "sha")["training"]
    assert keys.model_identity(paper, "m", "o/m", "sha")["training"]["append_eos"] is False
    plain, judged = (keys.shard_identity(c, "chat", "sha", 0) for c in (polyglot, paper))
    assert "judged_sample" not in plain and "gate_language" not in plain["judge"]
    assert judged["judged_sample"] == {"size": 300, "method": "pandas", "seed": 42}
    assert judged["judge"]["gate_language"] == "prompt"
    assert keys.item_settings(polyglot.evaluation.tasks["xnli"]) == {"sample_size": None}
    assert TASKS.get("xnli").inputs(paper.evaluation.tasks["xnli"], "en", "")["split"] == "test"


def test_a_running_lid_must_serve_openlid_for_the_paper_profile(lid_client, tiny_openlid_model: Path) -> None:
    from flows.preflight_config import _lid_model_served
    from services.lid.client import LidClient
    from services.lid.core import LanguageIdentifier
    from tests.fixtures.lid import running_lid

    cfg = parse_config(MINIMAL + "lid: {model: openlid}\n")
    (problem,) = _lid_model_served(cfg, SimpleNamespace(lid=lid_client))  # the embedded lid.176
    assert "lid.model is openlid" in problem and "POLYGLOT_LID_MODEL" in problem
    assert _lid_model_served(parse_config(MINIMAL), SimpleNamespace(lid=lid_client)) == []
    with running_lid(LanguageIdentifier(tiny_openlid_model)) as address, LidClient(address, timeout=30) as openlid:
        assert _lid_model_served(cfg, SimpleNamespace(lid=openlid)) == []


def test_paper_presets_are_the_papers_decoding() -> None:
    from services.common.presets import get_preset

    paper = {"top_p": 0.9, "top_k": 50, "frequency_penalty": 0.2, "max_tokens": 1024, "stop": PAPER_STOPS}
    assert get_preset("paper_constrained").model_dump(include=set(paper) | {"temperature"}) == paper | {
        "temperature": 0.001
    }
    assert get_preset("paper_chat").model_dump(include=set(paper) | {"temperature"}) == paper | {"temperature": 0.8}
