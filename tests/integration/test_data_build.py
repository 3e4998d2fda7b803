"""The smoke recipe on the real OASST data in ../shared, labelled through the real lid service over gRPC,
and `polyglot data build`: progress, idempotency, and exit codes that name the problem."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.config import load_config
from flows.data.build import build_mixes, read_mix
from flows.data.labelling import core_labeller, service_labeller
from services.common.store import open_store

runner = CliRunner()
SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"


@pytest.fixture(scope="module")
def smoke_all_mixes():
    """configs/smoke.yaml's recipe (N = 160, K = 20, seed 42) extended to every mix the data supports."""
    return load_config(
        SMOKE,
        overrides={"data.mixes.build": "[mono, multi-2, multi-3, multi-4, multi-5, multi-6, full, 'leave-one-out:ru']"},
    )


@pytest.mark.slow
def test_smoke_recipe_through_the_lid_service(tmp_path: Path, lid_client, lid_identifier, smoke_all_mixes):
    study = smoke_all_mixes
    assert (study.data.mixes.n, study.data.mixes.k, study.data.mixes.seed) == (160, 20, 42)
    store = open_store(tmp_path.as_uri())
    labeller = service_labeller(lid_client)
    built = {b.name: b for b in build_mixes(study.data, store, labeller)}
    order = ["es", "ru", "de", "zh", "fr"]
    assert built["mono"].manifest.counts == {"en": 160}
    for i in range(2, 7):
        rows = read_mix(store, built[f"multi-{i}"])
        assert len(rows) == 160
        assert Counter(r["lang"] for r in rows) == Counter(
            {"en": 160 - 20 * (i - 1), **dict.fromkeys(order[: i - 1], 20)}
        )
        assert all(r["lid_prob"] >= 0.8 for r in rows)
    # lid.176 keeps en 389, es 272, ru 80, fr 34, de 29, zh 29 of the 953 OASST rows at confidence >= 0.8.
    full = built["full"].manifest.counts
    assert full["en"] == 389 and full["es"] == 272 and full["ru"] == 80 and full["de"] == 29 and full["zh"] == 29
    assert "ru" not in built["leave-one-out:ru"].manifest.counts
    assert sum(built["leave-one-out:ru"].manifest.counts.values()) == built["full"].manifest.rows - 80
    # The service and the in-process core run the same model the same way: same keys, same bytes.
    local = open_store((tmp_path / "local").as_uri())
    for b in build_mixes(study.data, local, core_labeller(lid_identifier)):
        assert b.key == built[b.name].key and local.get_bytes(b.data_key) == store.get_bytes(built[b.name].data_key)


def _study_file(tmp_path: Path, shared: Path) -> Path:
    """A small study with all four tasks; X-CSQA from files written here (it is not in ../shared)."""
    xcsqa = tmp_path / "xcsqa"
    for lang, stem in {"en": "Where do fish live?", "es": "¿Dónde viven los peces?"}.items():
        (xcsqa / lang).mkdir(parents=True)
        record = {
            "id": "q1",
            "lang": lang,
            "question": {"stem": stem, "choices": [{"label": c, "text": f"{c.lower()}-text"} for c in "ABCDE"]},
            "answerKey": "D",
        }
        (xcsqa / lang / "dev.jsonl").write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    path = tmp_path / "study.yaml"
    path.write_text(
        f"""
name: cli-test
base_models: [{{name: m, model: ./m}}]
data:
  conversations: {{source: {shared}/data/oasst/qlora_oa_questions.jsonl}}
  mixes: {{n: 160, k: 20, build: [mono, multi-2, multi-3]}}
evaluation:
  tasks:
    chat:
      languages: [en, es]
      sample_size: 3
      alpaca_eval: {shared}/data/alpaca_eval/alpaca_eval_gpt4_1106_preview_outputs.json
      alpaca_eval_translations: {shared}/data/alpaca_eval/omgeval
    xquad: {{languages: [en, es], sample_size: 2, data_dir: {shared}/data/xquad}}
    xcsqa: {{languages: [en, es], data_dir: ./xcsqa}}
    xnli: {{languages: [en, es], sample_size: 4, data_dir: {shared}/data/xnli}}
""",
        encoding="utf-8",
    )
    return path


def _objects(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_ino) for p in root.rglob("*") if p.is_file()}


def test_cli_builds_everything_once(tmp_path: Path, shared_dir: Path, lid_service: str):
    study = _study_file(tmp_path, shared_dir)
    store_dir = tmp_path / "store"
    args = ["data", "build", str(study), "--store", store_dir.as_uri(), "--lid", lid_service, "--judge", "127.0.0.1:1"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "label conversations built" in first.stderr and "multi-3 built" in first.stderr
    assert "11 built, 0 already in" in first.stderr  # 3 mixes + 4 tasks x 2 languages
    keys = re.findall(r"(datasets/multi-3/[0-9a-f]{16})", first.stderr)
    assert keys and (store_dir / keys[0] / "data.jsonl").is_file()
    before = _objects(store_dir)
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "nothing to do: all 11 datasets are already in" in second.stderr
    assert "label conversations" not in second.stderr  # the source was not even looked at again
    assert _objects(store_dir) == before


@pytest.mark.slow  # the unreachable-service case waits out the client's retries
def test_cli_smoke_config_mixes_then_errors(tmp_path: Path, lid_service: str):
    store = tmp_path.as_uri()
    ok = runner.invoke(app, ["data", "build", str(SMOKE), "--only", "mixes", "--store", store, "--lid", lid_service])
    assert ok.exit_code == 0, ok.output
    assert "3 built" in ok.stderr
    # K = 30 is more than OASST has in German and Chinese after LID filtering: exit 1 naming both.
    short = runner.invoke(
        app,
        [
            "data",
            "build",
            str(SMOKE),
            "--only",
            "mixes",
            "--store",
            store,
            "--lid",
            lid_service,
            "--set",
            "data.mixes.k=30",
            "--set",
            "data.mixes.build=[multi-6]",
        ],
    )
    assert short.exit_code == 1
    text = " ".join(short.stderr.split())
    assert "multi-6 needs 30 'de' conversations with LID confidence >= 0.8 but the source has 29" in text
    assert "'zh'" in text
    # A bad config exits 2 naming the field, before any service is called.
    bad = runner.invoke(app, ["data", "build", str(SMOKE), "--set", "data.mixes.k=-1", "--lid", "127.0.0.1:1"])
    assert bad.exit_code == 2 and "data.mixes.k" in bad.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text(SMOKE.read_text(encoding="utf-8").replace("lid_threshold:", "lid_treshold:"), encoding="utf-8")
    bad = runner.invoke(app, ["data", "build", str(typo)])
    assert bad.exit_code == 2 and "data.lid_treshold" in bad.stderr
    store_bad = runner.invoke(app, ["data", "build", str(SMOKE), "--store", "ftp://x"])
    assert store_bad.exit_code == 2 and "--store" in store_bad.stderr
    down = runner.invoke(
        app, ["data", "build", str(SMOKE), "--only", "mixes", "--store", store, "--lid", "127.0.0.1:1"]
    )
    assert down.exit_code == 1 and "lid service at 127.0.0.1:1 is not reachable" in " ".join(down.stderr.split())
