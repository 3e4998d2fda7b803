"""Figures: hatching where the language is in the mix's tuning data, CIs, order, files, the pipeline-check stamp,
titles that fit, means at the axis floor, one figure for metrics equal in every cell."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.container import ErrorbarContainer

from flows.aggregate import summarize
from flows.config import parse_mix
from flows.figures import (
    PIPELINE_CHECK_NOTE,
    bar_figure,
    in_tuning_data,
    metric_agreements,
    render_figures,
    tuning_languages,
)
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


def test_every_text_fits_inside_the_figure_even_with_a_long_title():
    records = make_records(mixes=("mono",), languages=("en",), n_items=4, task="xquad", variant="en:xx",
                           metric="em", base_model="a-base-model-with-a-rather-long-name-7b")  # fmt: skip
    rows = summarize(records, n_resamples=50)
    fig = bar_figure(rows, same_as=["f1"], pipeline_check=True)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        bounds = fig.bbox
        texts = [fig._suptitle, fig.axes[0].title, fig.axes[0].yaxis.label, *fig.axes[0].texts]
        assert "\n" in fig._suptitle.get_text()  # wrapped, not shrunk or cut
        for text in texts:
            box = text.get_window_extent(renderer)
            assert bounds.x0 <= box.x0 and box.x1 <= bounds.x1 and bounds.y0 <= box.y0 and box.y1 <= bounds.y1, (
                text.get_text()
            )
    finally:
        plt.close(fig)


def test_means_at_the_axis_floor_get_a_tick_and_their_value():
    value = lambda mix, lang, item, seed, rng: 0.0 if lang == "es" else 1.0  # noqa: E731
    fig = bar_figure(summarize(make_records(mixes=("mono",), n_items=4, value=value), n_resamples=50))
    try:
        ax = fig.axes[0]
        ticks = {line.get_gid() for line in ax.lines if (line.get_gid() or "").startswith("floor:")}
        assert ticks == {"floor:mono:es"}
        (tick,) = [line for line in ax.lines if line.get_gid() == "floor:mono:es"]
        assert set(tick.get_ydata()) == {0.0} and tick.get_linewidth() >= 3
        assert "0.00" in {t.get_text() for t in ax.texts}
    finally:
        plt.close(fig)


def chat_rows(differ_in: str | None = None):
    same = lambda mix, lang, item, seed, rng: float((item + seed) % 3 == 0)  # noqa: E731
    other = lambda mix, lang, item, seed, rng: float(lang == differ_in or same(mix, lang, item, seed, rng))  # noqa: E731
    records = make_records(task="chat", metric="lang_match", languages=("en", "es", "ru"), n_items=6, value=same)
    records += make_records(task="chat", metric="tgt_lang", languages=("en", "es", "ru"), n_items=6, value=other)
    return summarize(records, n_resamples=50)


def test_metrics_equal_in_every_cell_share_one_figure(tmp_path, smoke_cfg):
    agreement = metric_agreements(chat_rows())[("m", "chat", "", "tgt_lang")]
    assert agreement.identical and agreement.metric == "lang_match" and agreement.cells == 6
    (figure,) = render_figures(smoke_cfg, chat_rows(), tmp_path, formats=["svg"])
    assert figure.metric == "lang_match"
    assert figure.title.endswith("Reply in the prompt's language = Reply in the target language")
    assert "one chart shows both" in figure.note


def test_metrics_that_differ_in_some_cells_are_shown_apart_naming_the_cells(tmp_path, smoke_cfg):
    agreement = metric_agreements(chat_rows(differ_in="es"))[("m", "chat", "", "tgt_lang")]
    assert not agreement.identical and agreement.differing == (("mono", "es"), ("multi-2", "es"))
    figures = render_figures(smoke_cfg, chat_rows(differ_in="es"), tmp_path, formats=["svg"])
    assert [f.metric for f in figures] == ["lang_match", "tgt_lang"]
    assert figures[1].note == (
        "Shown apart from Reply in the prompt's language: the two agree in 4 of 6 cells and differ in "
        "Mono · es, Multi-2 · es."
    )
