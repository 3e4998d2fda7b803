"""Figures: hatching where the language is in the mix's tuning data, CIs, order, files, the pipeline-check stamp."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.container import ErrorbarContainer

from flows.aggregate import summarize
from flows.config import parse_mix
from flows.figures import PIPELINE_CHECK_NOTE, bar_figure, in_tuning_data, render_figures, tuning_languages
from tests.unit.flows.conftest import make_records

ORDER = ("es", "ru", "de", "zh", "fr")


@pytest.mark.parametrize(
    ("mix", "trained", "untrained"),
    [
        ("mono", {"en"}, {"es", "de", "is"}),
        ("multi-2", {"en", "es"}, {"ru", "de"}),
        ("multi-3", {"en", "es", "ru"}, {"de", "zh", "hi"}),
        ("multi-6", {"en", "es", "ru", "de", "zh", "fr"}, {"sv", "el"}),
        ("multi-3-mt", {"en", "es", "ru"}, {"de"}),
        ("full", {"en", "de", "is", "el"}, set()),
        ("leave-one-out:de", {"en", "es", "is"}, {"de"}),
    ],
)
def test_tuning_languages_follow_the_mix_recipe(mix, trained, untrained):
    assert all(in_tuning_data(mix, lang, ORDER) for lang in trained)
    assert not any(in_tuning_data(mix, lang, ORDER) for lang in untrained)


def test_tuning_languages_of_multi_i_and_full():
    assert tuning_languages(parse_mix("multi-4"), ORDER) == {"en", "es", "ru", "de"}
    assert tuning_languages(parse_mix("full"), ORDER) is None


def rows_for(mixes=("mono", "multi-2", "multi-3"), languages=("ru", "en", "de", "es", "hi")):
    return summarize(make_records(mixes=mixes, languages=languages, n_items=10), n_resamples=100)


def test_bars_are_hatched_exactly_where_the_language_was_tuned_on():
    fig = bar_figure(rows_for(), mixes=["mono", "multi-2", "multi-3"], order=ORDER)
    try:
        ax = fig.axes[0]
        bars = {p.get_gid(): p for p in ax.patches if (p.get_gid() or "").startswith("bar:")}
        assert len(bars) == 15
        hatched = {gid for gid, p in bars.items() if p.get_hatch()}
        assert hatched == {
            "bar:mono:en",
            "bar:multi-2:en",
            "bar:multi-2:es",
            "bar:multi-3:en",
            "bar:multi-3:es",
            "bar:multi-3:ru",
        }
        # One CI error bar set per mix, one whisker per bar.
        errorbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert len(errorbars) == 3 and all(len(c.lines[2][0].get_segments()) == 5 for c in errorbars)
        # Languages by resource group: English, high (de es ru in registry order), extremely low (hi).
        assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == ["en", "de", "es", "ru", "hi"]
        texts = {t.get_text() for t in ax.texts}
        assert {"English", "high resource", "extremely low"} <= texts
        # The legend names every mix and explains the hatching.
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        assert legend == ["Mono", "Multi-2", "Multi-3", "language in tuning data"]
    finally:
        plt.close(fig)


def test_bar_heights_and_whiskers_are_the_means_and_intervals():
    rows = rows_for(mixes=("mono",), languages=("en",))
    fig = bar_figure(rows)
    try:
        (bar,) = [p for p in fig.axes[0].patches if p.get_gid() == "bar:mono:en"]
        assert bar.get_y() + bar.get_height() == pytest.approx(rows[0].mean)
        segment = fig.axes[0].containers[-1].lines[2][0].get_segments()[0]
        assert (segment[0][1], segment[1][1]) == pytest.approx((rows[0].ci_low, rows[0].ci_high))
    finally:
        plt.close(fig)


def test_render_writes_png_and_svg_per_series_and_stamps_pipeline_checks(tmp_path, smoke_cfg, paper_cfg):
    rows = [r for r in rows_for() if r.language in ("en", "es")]
    figures = render_figures(smoke_cfg, rows, tmp_path / "smoke")
    (figure,) = figures
    assert figure.key == "m-xnli-accuracy" and set(figure.paths) == {"png", "svg"}
    png, svg = (tmp_path / "smoke" / "m-xnli-accuracy.png"), (tmp_path / "smoke" / "m-xnli-accuracy.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "PIPELINE CHECK" in text and PIPELINE_CHECK_NOTE in text
    assert 'id="bar:multi-2:es"' in text and "<pattern" in text  # hatching survives into the SVG
    (real,) = render_figures(paper_cfg, rows, tmp_path / "paper", formats=["svg"])
    assert "PIPELINE CHECK" not in (tmp_path / "paper" / "m-xnli-accuracy.svg").read_text()
    assert set(real.paths) == {"svg"}
