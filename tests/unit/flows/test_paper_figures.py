"""The paper's comparison figures from small aggregates: the larger base model over the smaller (Fig. 7) and
the language-agreement heatmaps, drawn only when the aggregate has their data, and laid out in the report."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import pytest

from flows.aggregate import summarize
from flows.report import paper_figures, render_report
from tests.unit.flows.conftest import make_records

SMALL, LARGE = "llama2-7b", "llama2-70b"
MIXES = ("mono", "multi-2")


@pytest.fixture(scope="module")
def two_sizes(paper_cfg):
    small = paper_cfg.base_models[0]
    large = small.model_copy(update={"name": LARGE, "model": "meta-llama/Llama-2-70b-hf"})
    return paper_cfg.model_copy(update={"base_models": [small, large]})


def chat_rows(metric: str, value, base_models=(SMALL, LARGE), languages=("en", "de", "ru")):
    records = []
    for base in base_models:
        records += make_records(
            mixes=MIXES, languages=languages, seeds=(0,), n_items=4, task="chat", metric=metric, base_model=base,
            value=lambda m, lang, i, s, r, base=base: value(base, m, lang),
        )  # fmt: skip
    return summarize(records, n_resamples=50)


def helpfulness(base: str, mix: str, lang: str) -> float:
    return (4.0 if base == LARGE else 2.0) + (1.0 if mix == "multi-2" else 0.0)


def test_the_larger_model_is_drawn_narrow_in_front_of_the_smaller(two_sizes, tmp_path):
    rows = chat_rows("helpfulness", helpfulness)
    ((figure, small, large, names),) = paper_figures.overlay_figures(two_sizes, rows, tmp_path)
    assert names == (SMALL, LARGE) and figure.title.startswith(f"{LARGE} over {SMALL} · Chat")
    assert set(figure.paths) == set(two_sizes.report.figure_formats)
    fig = paper_figures.overlay_figure(small, large, list(MIXES), names, figure.title)
    try:
        bars = {p.get_gid(): p for p in fig.axes[0].patches if (p.get_gid() or "").startswith("bar:")}
        assert len(bars) == 2 * len(MIXES) * 3
        for mix in MIXES:
            for lang in ("en", "de", "ru"):
                wide, narrow = bars[f"bar:{SMALL}:{mix}:{lang}"], bars[f"bar:{LARGE}:{mix}:{lang}"]
                assert narrow.get_width() < wide.get_width() and narrow.get_zorder() >= wide.get_zorder()
                assert narrow.get_x() + narrow.get_width() / 2 == pytest.approx(wide.get_x() + wide.get_width() / 2)
                # Heights from the axis floor (helpfulness 1) are the cells' means.
                assert wide.get_y() + wide.get_height() == pytest.approx(helpfulness(SMALL, mix, lang))
                assert narrow.get_y() + narrow.get_height() == pytest.approx(helpfulness(LARGE, mix, lang))
    finally:
        plt.close(fig)


def agreement(base: str, mix: str, lang: str) -> float:
    return 1.0 if lang == "en" or mix == "multi-2" else 0.0


def test_agreement_heatmap_is_mix_by_language_per_base_model(paper_cfg, tmp_path):
    rows = [
        r for r in chat_rows("lang_match", agreement, base_models=(SMALL,)) if (r.mix, r.language) != ("mono", "ru")
    ]
    ((figure, cells),) = paper_figures.agreement_figures(paper_cfg, rows, tmp_path)
    assert figure.title == f"{SMALL} · Chat · Reply in the prompt's language"
    fig = paper_figures.agreement_heatmap(cells, list(MIXES), figure.title)
    try:
        texts = {t.get_gid(): t.get_text() for t in fig.axes[0].texts if (t.get_gid() or "").startswith("cell:")}
        expected = {
            f"cell:{m}:{lang}": f"{agreement(SMALL, m, lang):.2f}" for m in MIXES for lang in ("en", "de", "ru")
        }
        del expected["cell:mono:ru"]  # no reply graded: the cell stays blank
        assert texts == expected
        image = next(i for i in fig.axes[0].images if i.get_gid() == "agreement")
        assert image.get_array().shape == (len(MIXES), 3)  # rows: mixes; columns: languages
    finally:
        plt.close(fig)


def test_nothing_is_drawn_without_the_data(paper_cfg, two_sizes, tmp_path):
    one_model = chat_rows("helpfulness", helpfulness, base_models=(SMALL,))
    assert paper_figures.sections(two_sizes, one_model, tmp_path) == []
    # Two models of one size are no scale comparison.
    same = two_sizes.base_models[0].model_copy(update={"name": "other-7b"})
    cfg = two_sizes.model_copy(update={"base_models": [two_sizes.base_models[0], same]})
    assert (
        paper_figures.overlay_figures(cfg, chat_rows("helpfulness", helpfulness, (SMALL, "other-7b")), tmp_path) == []
    )


def test_report_shows_both_sections_with_their_numbers(two_sizes, tmp_path):
    rows = chat_rows("helpfulness", helpfulness) + chat_rows("lang_match", agreement)
    cfg = two_sizes.model_copy(update={"report": two_sizes.report.model_copy(update={"formats": ["markdown", "html"]})})
    paths = render_report(cfg, rows, [], [], {}, {}, tmp_path, versions=[("python", "3.11")])
    md, html = paths["md"].read_text(), paths["html"].read_text()
    assert "## Larger base model over smaller (the paper's Fig. 7)" in md
    assert "## Language agreement by mix and language (the paper's appendix)" in md
    assert f"| language | Mono: {SMALL} → {LARGE} | Multi-2: {SMALL} → {LARGE} |" in md
    assert "| de · German | 2.00 → 4.00 (+2.00) | 3.00 → 5.00 (+2.00) |" in md
    assert "| de · German | 0.000 | 1.000 |" in md and "| en · English | 1.000 | 1.000 |" in md
    links = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", md)
    assert any("over" in link for link in links) and any("agreement-heatmap" in link for link in links)
    assert all((tmp_path / link).is_file() for link in links)
    assert html.count('src="data:image/svg+xml;base64,') >= 3  # the overlay, a heatmap per base model
