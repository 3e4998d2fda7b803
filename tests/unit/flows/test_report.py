"""The report: every section, the banner on pipeline checks, figures embedded, atomic and reproducible."""

from __future__ import annotations

import base64
import re
from html import unescape

import pytest

from flows.aggregate import aggregate
from flows.config import ReportConfig
from flows.figures import render_figures
from flows.report import render_report
from flows.results import ItemResult
from tests.unit.flows.conftest import make_records

VERSIONS = [("python", "3.11"), ("numpy", "2.4.6")]


def study_records() -> list[ItemResult]:
    records = make_records(mixes=("mono", "multi-2"), languages=("en", "es"), n_items=6)
    records += make_records(mixes=("mono", "multi-2"), languages=("en", "es"), n_items=6, task="xcsqa")
    records += make_records(
        mixes=("mono", "multi-2"), languages=("de",), n_items=6, task="xquad", variant="en:xx", metric="em"
    )
    records += make_records(
        mixes=("mono", "multi-2"),
        languages=("ru",),
        n_items=6,
        task="chat",
        metric="helpfulness",
        value=lambda m, lang, i, s, r: float(1 + i % 6),
    )
    return records


@pytest.fixture(scope="module")
def study(tmp_path_factory, smoke_cfg):
    out = tmp_path_factory.mktemp("report")
    result = aggregate(study_records(), ReportConfig(bootstrap_samples=200))
    chat_rows = [r for r in result.rows if r.task == "chat"]
    figures = render_figures(smoke_cfg, chat_rows, out / "figure-src", formats=["png", "svg"])
    return result, figures, out


def render(cfg, study, out, **kwargs):
    result, figures, _ = study
    manifests = {"multi-2": {"rows": 160, "languages": {"en": 140, "es": 20}}}
    cards = [{"mix": "multi-2", "base_model": "tiny-llama", "steps": 10, "final_loss": 9.87}]
    return render_report(cfg, result.rows, result.tests, figures, manifests, cards, out, versions=VERSIONS, **kwargs)


def test_report_has_every_section_and_the_pipeline_banner(study, smoke_cfg, tmp_path):
    paths = render(smoke_cfg, study, tmp_path / "out")
    assert set(paths) == {"html", "md"}
    html, md = paths["html"].read_text(), paths["md"].read_text()
    for text in (unescape(html), md):
        assert "Pipeline check — tiny random model, not results" in text
        for title in (
            "Chat",
            "XQuAD",
            "X-CSQA",
            "XNLI",
            "Paired tests against Mono",
            "Per-seed spread",
            "Configuration",
            "Dataset manifests",
            "Training cards",
            "Library versions",
        ):
            assert title in text, title
        assert "name: smoke" in text and "lid_threshold: 0.8" in text  # the config, as YAML
        assert '"es": 20' in text  # the manifest verbatim
        assert "numpy" in text and "2.4.6" in text
    assert "final_loss</th><td>9.87</td>" in html and "| final_loss | 9.87 |" in md  # the card as a table
    assert 'class="banner"' in html and md.startswith("> **⚠ Pipeline check")


def test_tables_show_mean_and_interval_per_language_and_mix(study, smoke_cfg, tmp_path):
    result, _, _ = study
    md = render(smoke_cfg, study, tmp_path / "out")["md"].read_text()
    row = next(r for r in result.rows if (r.task, r.mix, r.language) == ("xcsqa", "multi-2", "es"))
    # es is in Multi-2's tuning data; every item was graded, so the count has no other outcome
    cell = f"{row.mean:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}] † · n={row.n_obs}"
    assert re.search(r"\| es · Spanish \| [^|]+ \| " + re.escape(cell) + r" \|", md)
    test = next(t for t in result.tests if (t.task, t.language) == ("chat", "ru"))
    assert f"p={test.p_value:.3f}" in md or "p=<0.001" in md
    assert "| language | Mono | Multi-2 |" in md and "| language | Multi-2 |" in md


def test_figures_are_embedded_in_html_and_linked_from_markdown(study, smoke_cfg, tmp_path):
    _, figures, _ = study
    paths = render(smoke_cfg, study, tmp_path / "out")
    html, md = paths["html"].read_text(), paths["md"].read_text()
    uris = re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(uris) == len(figures) == 1
    assert b"PIPELINE CHECK" in base64.b64decode(uris[0])
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links == ["figures/m-chat-helpfulness.png"] and (tmp_path / "out" / links[0]).is_file()


def test_no_banner_for_a_real_model_and_only_the_asked_formats(study, paper_cfg, tmp_path):
    cfg = paper_cfg.model_copy(update={"report": paper_cfg.report.model_copy(update={"formats": ["markdown"]})})
    paths = render(cfg, study, tmp_path / "out")
    assert set(paths) == {"md"} and not (tmp_path / "out" / "report.html").exists()
    text = paths["md"].read_text()
    assert "Pipeline check" not in text and "paper-llama2-7b" in text


def test_rerendering_is_byte_identical_and_leaves_no_temporary_files(study, smoke_cfg, tmp_path):
    first = {k: p.read_bytes() for k, p in render(smoke_cfg, study, tmp_path / "out").items()}
    second = {k: p.read_bytes() for k, p in render(smoke_cfg, study, tmp_path / "out").items()}
    assert first == second
    leftovers = [p.name for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_html_escapes_text_from_cards(study, smoke_cfg, tmp_path):
    result, figures, _ = study
    cards = {"evil": {"note": "<script>alert(1)</script>"}}
    paths = render_report(smoke_cfg, result.rows, result.tests, figures, {}, cards, tmp_path, versions=VERSIONS)
    html = paths["html"].read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "No dataset manifests were given." in html


def test_training_cards_are_tables_with_their_loss_curve(study, smoke_cfg, tmp_path):
    result, figures, _ = study
    curve = [{"step": 1, "loss": 10.4, "learning_rate": 0.0, "epoch": 0.1}, {"step": 2, "loss": 9.9}]
    card = {"final_loss": 9.9, "hyperparameters": {"lora_r": 64}, "outputs": {"adapter": {"uri": "file:///a"}},
            "loss_curve": curve}  # fmt: skip
    paths = render_report(smoke_cfg, result.rows, result.tests, figures, {}, {"m/multi-2": card}, tmp_path,
                          versions=VERSIONS)  # fmt: skip
    html, md = paths["html"].read_text(), paths["md"].read_text()
    for caption in ("run", "hyperparameters", "outputs"):
        assert f"<caption>{caption}</caption>" in html and f"| {caption} | |" in md
    assert "adapter.uri</th><td>file:///a</td>" in html and "loss_curve" not in html + md
    assert 'alt="m/multi-2: training loss by step"' in html and 'src="data:image/png;base64,' in html
    assert "![m/multi-2: training loss](figures/loss-m-multi-2.png)" in md
    assert (tmp_path / "figures" / "loss-m-multi-2.png").read_bytes()[:4] == b"\x89PNG"
