"""X-CSQA from a local copy of the hub dataset, read by the real `datasets` (offline: the test writes the
hub's shape — a dataset card declaring `X-CSQA-<code>` configs and their parquet files — with made-up
questions), through the eval-set builder into an artifact store; and the paper configs plan X-CSQA offline."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from flows import keys
from flows.config import load_config
from flows.data.build import EvalSetBuilder, read_eval_set
from flows.evals import xcsr
from services.common.errors import FailedPrecondition
from services.common.store import LocalStore

ROOT = Path(__file__).resolve().parents[2]
FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "lang": datasets.Value("string"),
        "question": {
            "stem": datasets.Value("string"),
            "choices": datasets.Sequence({"label": datasets.Value("string"), "text": datasets.Value("string")}),
        },
        "answerKey": datasets.Value("string"),
    }
)


def rows(code: str, split: str) -> list[dict]:
    return [
        {
            "id": f"q{n}",
            "lang": code,
            # `sequence` of a dict, as the hub card declares it: the choices stored as columns.
            "question": {
                "stem": f"{code} {split} question {n}",
                "choices": {"label": list("ABCDE"), "text": [f"{code} choice {label}{n}" for label in "ABCDE"]},
            },  # fmt: skip
            # The hub's test rows withhold the answer, as the release does.
            "answerKey": "ABCDE"[n % 5] if split == "validation" else "",
        }
        for n in range(5)
    ]


def write_hub_snapshot(root: Path, codes: list[str]) -> Path:
    card = ["---", "configs:"]
    for code in codes:
        card += [f"- config_name: X-CSQA-{code}", "  data_files:"]
        for split in ("validation", "test"):
            path = root / f"X-CSQA-{code}" / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_list(rows(code, split), features=FEATURES).to_parquet(str(path))
            card += [f"  - split: {split}", f"    path: X-CSQA-{code}/{split}-*"]
    (root / "README.md").write_text("\n".join([*card, "---", "Made-up questions in X-CSR's hub shape."]) + "\n")
    return root


def test_hub_copy_builds_eval_sets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")  # not the user's cache
    snapshot = write_hub_snapshot(tmp_path / "xcsr", ["de", "jap"])
    cfg = load_config(
        ROOT / "configs" / "smoke.yaml",
        {"evaluation.tasks.xcsqa": {"languages": ["de", "ja"], "source": str(snapshot), "sample_size": 3}},
        tasks=["xcsqa"],
    )
    store = LocalStore(tmp_path / "store")
    built = EvalSetBuilder(cfg.evaluation, store).build()
    assert [b.manifest.language for b in built] == ["de", "ja"]
    japanese = read_eval_set(store, built[1])
    assert len(japanese) == 3 and all(item.question.startswith("jap validation") for item in japanese)
    assert all(item.answers[0] == "ABCDE"[int(item.id[1:]) % 5] for item in japanese)
    # The key is by content: the same copy elsewhere finds the same eval sets.
    assert built[0].manifest.inputs["data"] == xcsr.inputs_digest(str(snapshot))
    assert any((tmp_path / "hf-datasets").iterdir())  # read through `datasets`, as the hub copy is


@pytest.mark.parametrize("config", ["paper-llama2-7b.yaml", "paper-falcon-7b.yaml", "paper-mt.yaml"])
def test_paper_configs_read_the_release_without_a_download_to_plan(config: str) -> None:
    cfg = load_config(ROOT / "configs" / config)
    options = cfg.evaluation.tasks["xcsqa"]
    assert options.source == "x-csr" and options.data_dir is None
    identity = keys.eval_set_identity(cfg.evaluation, "xcsqa", options.languages[0], "")
    assert identity["inputs"]["data"] == "x-csr:" + keys.digest(xcsr.identity("x-csr"))


def test_hub_copy_offline_names_what_to_do(tmp_path: Path) -> None:
    """The test session is offline (HF_HUB_OFFLINE=1) and the hub copy is not cached: the error says how to
    get the release onto a machine without the hub."""
    with pytest.raises(FailedPrecondition, match="polyglot data build CONFIG --only evalsets") as caught:
        xcsr.dev_jsonl("x-csr", "de", store=LocalStore(tmp_path))
    assert caught.value.field == "evaluation.tasks.xcsqa.source" and "X-CSQA-de" in str(caught.value)
