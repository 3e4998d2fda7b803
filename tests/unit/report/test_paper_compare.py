"""The paper's Fig. 7 across two finished studies (`report.compare_with`): the other study's newest aggregate
joins this one's rows by (task, variant, metric, mix, language), its base model sizes from its config; a study
with no aggregate stops `study run` with exit 2 naming the field."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from flows import keys
from flows.aggregate import Aggregate, summarize
from flows.cli import app
from flows.config import load_config
from flows.report import paper_figures, render_report
from services.common.store import open_store
from tests.unit.flows.conftest import make_records

MIXES, LANGS = ("mono", "multi-2"), ("en", "de")


def write_study(tmp_path: Path, name: str, model: str, hub_id: str, compare_with: str | None = None) -> Path:
    report = "{formats: [markdown], figure_formats: [svg], bootstrap_samples: 100"
    report += f", compare_with: {compare_with}}}" if compare_with else "}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nartifact_store: {(tmp_path / name).as_uri()}\n"
        f"base_models: [{{name: {model}, model: {hub_id}}}]\n"
        f"evaluation: {{tasks: {{chat: }}}}\nreport: {report}\n",
        encoding="utf-8",
    )
    return path


def rows(model: str, base: float):
    records = make_records(mixes=MIXES, languages=LANGS, seeds=(0,), n_items=3, task="chat", metric="helpfulness",
                           base_model=model, value=lambda m, lang, i, s, r: base + (m == "multi-2"))  # fmt: skip
    return summarize(records, n_resamples=20)


def finish(path: Path, model: str, base: float) -> None:
    """Store an aggregate for the study at `path`, where `study run` would."""
    cfg = load_config(path)
    aggregated = Aggregate(rows(model, base), [], 0.95, 20, 0)
    open_store(cfg.artifact_store).put_json(keys.aggregate_key(cfg, ["shard"]), aggregated.to_json())


def test_the_other_studys_larger_model_is_drawn_over_this_ones(tmp_path: Path) -> None:
    finish(write_study(tmp_path, "paper-70b", "llama2-70b", "meta-llama/Llama-2-70b-hf"), "llama2-70b", 4.0)
    cfg = load_config(write_study(tmp_path, "paper-7b", "llama2-7b", "meta-llama/Llama-2-7b-hf", "paper-70b.yaml"))
    (section,) = paper_figures.sections(cfg, rows("llama2-7b", 2.0), tmp_path / "out")
    assert section.id == "model-scale" and "with study paper-70b" in section.title
    (table,) = section.tables
    assert table.title.startswith("llama2-70b over llama2-7b · Chat")
    assert dict(table.rows)["de"] == ["2.00 → 4.00 (+2.00)", "3.00 → 5.00 (+2.00)"]
    md = render_report(cfg, rows("llama2-7b", 2.0), [], [], {}, {}, tmp_path / "out", versions=[])["md"].read_text()
    assert "| de · German | 2.00 → 4.00 (+2.00) | 3.00 → 5.00 (+2.00) |" in md


def test_a_base_model_named_as_this_studys_is_told_apart_by_its_study(tmp_path: Path) -> None:
    finish(write_study(tmp_path, "big", "llama2", "meta-llama/Llama-2-70b-hf"), "llama2", 3.0)
    cfg = load_config(write_study(tmp_path, "small", "llama2", "meta-llama/Llama-2-7b-hf", "big.yaml"))
    ((figure, _, _, names),) = paper_figures.overlay_figures(
        cfg, rows("llama2", 1.0), tmp_path, paper_figures.other_study(cfg)
    )
    assert names == ("llama2", "llama2 (big)") and figure.title.startswith("llama2 (big) over llama2 ·")


def test_study_run_stops_before_any_work_when_the_other_study_has_no_aggregate(tmp_path: Path) -> None:
    write_study(tmp_path, "paper-70b", "llama2-70b", "meta-llama/Llama-2-70b-hf")
    path = write_study(tmp_path, "paper-7b", "llama2-7b", "meta-llama/Llama-2-7b-hf", "paper-70b.yaml")
    result = CliRunner().invoke(app, ["study", "run", str(path), "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 2, result.output
    assert "report.compare_with" in result.output and "has no aggregate" in result.output
    assert not (tmp_path / "state").exists()


def test_a_compared_config_that_does_not_exist_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = write_study(tmp_path, "paper-7b", "llama2-7b", "meta-llama/Llama-2-7b-hf", "no-such-study.yaml")
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2, result.output
    assert "report.compare_with" in result.output and "no such file" in " ".join(result.output.split())
