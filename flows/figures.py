"""Figures like the paper's: grouped bars per language, one bar per mix, for one task and metric.

Conventions (the layout follows the paper's figures, Kew et al., Figs. 1-4; the floor ticks, the merged
figures, the fitted titles and the pipeline-check stamp are Polyglot's additions):
- languages on the x axis in resource-group order (English, high, low, extremely low), with the groups
  separated and labelled;
- one bar per mix, hatched where the language is in that mix's tuning data (Multi-i: English plus the
  first i-1 languages of the mix order), so transfer to unseen languages is visible at a glance;
- error bars are the bootstrap confidence interval of the pooled mean (see `flows.aggregate`);
- a mean at the axis floor (accuracy 0, helpfulness 1) has no bar to see, so it gets a thick tick on the
  axis and its value;
- two metrics of a task that agree in every cell are one figure (`metric_agreements`), since two
  identical charts only invite a search for a difference that is not there.
Titles are wrapped to the figure's width, measured, so no title is clipped.
A study run on a tiny random model is stamped as a pipeline check in the title, the footnote and a
watermark, so its bars cannot be mistaken for findings.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # figures are files; never open a window (CI and pods have no display)

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from flows.aggregate import SummaryRow, cell_slug, mix_sort_key  # noqa: E402
from flows.config import MixSpec, StudyConfig, parse_mix  # noqa: E402
from flows.evals import METRICS, TASKS  # noqa: E402
from services.common import languages  # noqa: E402
from services.common.store.base import write_file_atomically  # noqa: E402

__all__ = [
    "PIPELINE_CHECK_NOTE",
    "Agreement",
    "FigureFile",
    "bar_figure",
    "confusion_figure",
    "confusion_figure_files",
    "figure_title",
    "in_tuning_data",
    "loss_figure",
    "metric_agreements",
    "mix_label",
    "render_figures",
    "tuning_languages",
]

PIPELINE_CHECK_NOTE = "pipeline check — tiny random model, not results"

GROUP_LABELS = {
    languages.ResourceGroup.ENGLISH: "English",
    languages.ResourceGroup.HIGH: "high resource",
    languages.ResourceGroup.LOW: "low resource",
    languages.ResourceGroup.EXTREMELY_LOW: "extremely low",
    languages.ResourceGroup.OTHER: "other",
}
_HATCH = "////"


# --- which languages a mix was tuned on -----------------------------------------------------------


def tuning_languages(spec: MixSpec, order: Sequence[str]) -> frozenset[str] | None:
    """The languages in a mix's tuning data; None means every language (the full Guanaco data).

    Mono: English. Multi-i (human or machine-translated): English plus the first i-1 of `order` (§3.1).
    `full`: all; `leave-one-out:<x>`: all but x (returned as None and handled by `in_tuning_data`).
    """
    if spec.kind == "mono":
        return frozenset({"en"})
    if spec.kind == "multi":
        return frozenset({"en", *spec.non_english(tuple(order))})
    return None


def in_tuning_data(mix: str | MixSpec, language: str, order: Sequence[str]) -> bool:
    """Whether `language` is in the mix's tuning data (the hatched bars); unknown mix names are not."""
    try:
        spec = mix if isinstance(mix, MixSpec) else parse_mix(mix)
    except ValueError:
        return False
    if spec.kind == "leave-one-out":
        return language != spec.left_out
    chosen = tuning_languages(spec, order)
    return chosen is None or language in chosen


def mix_label(name: str) -> str:
    """Display names as in the paper: Mono, Multi-2, Multi-2 (MT), Guanaco (full), LOO-de."""
    try:
        spec = parse_mix(name)
    except ValueError:
        return name
    if spec.kind == "mono":
        return "Mono"
    if spec.kind == "multi":
        return f"Multi-{spec.size}" + (" (MT)" if spec.machine_translated else "")
    if spec.kind == "full":
        return "Guanaco (full)"
    return f"Full − {spec.left_out}"


def _colours(mixes: Sequence[str]) -> dict[str, object]:
    """Mono grey; Multi-i along viridis by i (more languages, lighter); MT on a warm scale; full navy."""
    specs = {}
    for name in mixes:
        try:
            specs[name] = parse_mix(name)
        except ValueError:
            specs[name] = None
    sizes = sorted({s.size for s in specs.values() if s and s.kind == "multi"})
    position = {size: (i / max(len(sizes) - 1, 1)) for i, size in enumerate(sizes)}
    others = plt.get_cmap("tab10")
    colours: dict[str, object] = {}
    extra = 0
    for name, spec in specs.items():
        if spec and spec.kind == "mono":
            colours[name] = "#8c8c8c"
        elif spec and spec.kind == "multi" and not spec.machine_translated:
            colours[name] = plt.get_cmap("viridis")(0.12 + 0.72 * position[spec.size])
        elif spec and spec.kind == "multi":
            colours[name] = plt.get_cmap("YlOrRd")(0.35 + 0.55 * position[spec.size])
        elif spec and spec.kind == "full":
            colours[name] = "#14325c"
        else:
            colours[name] = others((3 + extra) % 10)
            extra += 1
    return colours


def _hatch_colour(colour: object) -> str:
    """White stripes on dark bars, dark stripes on light ones, so the hatching shows on every colour."""
    red, green, blue, _ = to_rgba(colour)
    return "white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.6 else "#3a3a3a"


# --- one figure ----------------------------------------------------------------------------------------


def figure_title(base_model: str, task: str, variant: str, metric: str, same_as: Sequence[str] = ()) -> str:
    """`model · task · variant · metric`; metrics merged into this figure are joined with ` = `."""
    spec = TASKS.get(task)
    parts = [spec.label]
    if variant:
        parts.append(spec.variant_label(variant))
    parts.append(" = ".join(METRICS.get(name).label for name in (metric, *same_as)))
    return f"{base_model} · " + " · ".join(parts)


# --- metrics that agree --------------------------------------------------------------------------------

SeriesKey = tuple[str, str, str, str]  # (base model, task, variant, metric)


@dataclass(frozen=True)
class Agreement:
    """A series compared with an earlier metric of its task: `differing` lists the (mix, language) cells
    where the two differ; none means they are the same in every cell and share one figure."""

    metric: str
    differing: tuple[tuple[str, str], ...]
    cells: int

    @property
    def identical(self) -> bool:
        return not self.differing

    def caption(self, label: str) -> str:
        other = METRICS.get(self.metric).label
        if self.identical:
            return (f"{label} equals {other} in all {self.cells} cells (means, per-seed means and counts), "
                    "so one chart shows both; their intervals differ only by the bootstrap's draws.")  # fmt: skip
        where = ", ".join(f"{mix_label(mix)} · {lang}" for mix, lang in self.differing[:6])
        more = f" and {len(self.differing) - 6} more" if len(self.differing) > 6 else ""
        return (f"Shown apart from {other}: the two agree in {self.cells - len(self.differing)} of {self.cells} "
                f"cells and differ in {where}{more}.")  # fmt: skip


def metric_agreements(rows: Iterable[SummaryRow]) -> dict[SeriesKey, Agreement]:
    """For each series that agrees with an earlier metric of the same base model, task and variant (in the
    task's metric order): in every cell (then it is merged into that metric's figure), or in most cells
    (then both are shown, and the caption names the cells that differ). Cells compare by mean, per-seed
    means and counts, since the aggregate keeps no per-item values."""
    cells: dict[tuple[str, str, str], dict[str, dict[tuple[str, str], tuple]]] = defaultdict(dict)
    for r in rows:
        signature = (r.mean, r.n_items, r.n_obs, tuple(r.seed_means))
        cells[(r.base_model, r.task, r.variant)].setdefault(r.metric, {})[(r.mix, r.language)] = signature
    agreements: dict[SeriesKey, Agreement] = {}
    for (base_model, task, variant), by_metric in cells.items():
        names = TASKS.get(task).metric_names()
        ordered = sorted(by_metric, key=lambda m: names.index(m) if m in names else len(names))
        kept: list[str] = []
        for metric in ordered:
            best = None
            for earlier in kept:
                mine, theirs = by_metric[metric], by_metric[earlier]
                shared = mine.keys() | theirs.keys()
                differing = tuple(sorted(c for c in shared if mine.get(c) != theirs.get(c)))
                if best is None or len(differing) < len(best.differing):
                    best = Agreement(earlier, differing, len(shared))
            if best is not None and 2 * len(best.differing) < best.cells:
                agreements[(base_model, task, variant, metric)] = best
            if best is None or not best.identical:
                kept.append(metric)
    return agreements


def bar_figure(
    rows: Sequence[SummaryRow],
    *,
    mixes: Sequence[str] | None = None,
    order: Sequence[str] = languages.PAPER_MIX_ORDER,
    title: str | None = None,
    same_as: Sequence[str] = (),
    pipeline_check: bool = False,
) -> Figure:
    """Grouped bars for rows of ONE (base model, task, variant, metric): languages × mixes; `same_as`
    names metrics equal to it in every cell, which the title and axis label name too.

    Each bar's gid is `bar:<mix>:<language>`, so tests and SVG readers can find a specific bar.
    """
    cells = {(r.mix, r.language): r for r in rows}
    if len({(r.base_model, r.task, r.variant, r.metric) for r in rows}) > 1:
        raise ValueError("bar_figure draws one (base model, task, variant, metric) at a time")
    present = {r.mix for r in rows}
    mixes = [m for m in (mixes or []) if m in present] + sorted(present - set(mixes or []), key=mix_sort_key)
    langs = languages.figure_order({r.language for r in rows})
    metric = METRICS.get(rows[0].metric if rows else "accuracy")
    floor, ceiling = metric.range
    colours = _colours(mixes)

    n_mix = max(len(mixes), 1)
    width = 0.8 / n_mix
    fig_width = min(max(3.0 + 0.15 * n_mix * len(langs) + 0.3 * len(langs), 7.0), 15.0)
    fig, ax = plt.subplots(figsize=(fig_width, 5.0), layout="constrained")

    for m_index, mix in enumerate(mixes):
        # One bar call and one errorbar call per mix: drawing bar by bar is several times slower.
        placed = [(i, cells[(mix, lang)]) for i, lang in enumerate(langs) if (mix, lang) in cells]
        xs = [i - 0.4 + width * (m_index + 0.5) for i, _ in placed]
        means = [row.mean for _, row in placed]
        bars = ax.bar(xs, [m - floor for m in means], width=width, bottom=floor, color=colours[mix],
                      edgecolor="white", linewidth=0.6)  # fmt: skip
        for bar, (l_index, _) in zip(bars, placed, strict=True):
            lang = langs[l_index]
            bar.set_gid(f"bar:{mix}:{lang}")
            if in_tuning_data(mix, lang, order):
                bar.set_hatch(_HATCH)
                bar.set_hatchcolor(_hatch_colour(colours[mix]))
        _mark_floor(ax, [(x, row.mean) for x, (_, row) in zip(xs, placed, strict=True)], width, floor, ceiling,
                    colours[mix], [f"{mix}:{langs[i]}" for i, _ in placed])  # fmt: skip
        ax.errorbar(
            xs,
            means,
            yerr=[[row.mean - row.ci_low for _, row in placed], [row.ci_high - row.mean for _, row in placed]],
            fmt="none",
            ecolor="#222222",
            elinewidth=0.9,
            capsize=min(2.5, 14 * width),
            capthick=0.9,
        )

    ax.set_xticks(range(len(langs)))
    ax.set_xticklabels([f"{code}\n{languages.get(code).name}" for code in langs], fontsize=8.5)
    ax.set_xlim(-0.6, len(langs) - 0.4)
    ax.set_ylim(floor, ceiling + 0.08 * (ceiling - floor))
    ax.set_ylabel(" =\n".join(METRICS.get(name).label for name in (metric.name, *same_as)))  # one label a line
    ax.yaxis.grid(True, color="#e3e3e3", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    # Resource groups: a dashed separator between groups and the group's name above its languages.
    top = blended_transform_factory(ax.transData, ax.transAxes)
    groups: dict[languages.ResourceGroup, list[int]] = defaultdict(list)
    for index, code in enumerate(langs):
        groups[languages.get(code).group].append(index)
    for number, (group, indices) in enumerate(groups.items()):
        if number:
            ax.axvline(indices[0] - 0.5, color="#9a9a9a", linestyle=(0, (4, 3)), linewidth=0.9)
        centre = (indices[0] + indices[-1]) / 2
        ax.text(centre, 0.985, GROUP_LABELS[group], transform=top, ha="center", va="top", fontsize=8.5,
                color="#555555", style="italic")  # fmt: skip

    handles = [Patch(facecolor=colours[m], edgecolor="white", label=mix_label(m)) for m in mixes]
    handles.append(Patch(facecolor="#bdbdbd", edgecolor="white", hatch=_HATCH, label="language in tuning data"))
    legend = fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=math.ceil(len(handles) / math.ceil(len(handles) / (5 if fig_width < 10 else 9))),
        frameon=False,
        fontsize=8.5,
        handlelength=1.6,
    )
    legend.legend_handles[-1].set_hatchcolor(_hatch_colour("#bdbdbd"))

    heading = title or (
        figure_title(rows[0].base_model, rows[0].task, rows[0].variant, metric.name, same_as) if rows else ""
    )
    confidence = rows[0].confidence if rows else 0.95
    subtitle = f"bars: mean over items and seeds · whiskers: {confidence:.0%} bootstrap CI"
    if pipeline_check:
        heading = f"PIPELINE CHECK · {heading}"
        subtitle = f"{PIPELINE_CHECK_NOTE}\n{subtitle}"
        fig.text(0.5, 0.5, "PIPELINE CHECK", fontsize=44, color="#d62728", alpha=0.09, rotation=18,
                 ha="center", va="center", weight="bold")  # fmt: skip
    suptitle = fig.suptitle(heading, fontsize=11.5, weight="bold", color="#b00020" if pipeline_check else "black")
    _wrap_to_width(suptitle, fig_width * fig.dpi * 0.96)
    ax.set_title(subtitle, fontsize=8.5, color="#b00020" if pipeline_check else "#555555", pad=4)
    return fig


def _mark_floor(ax, bars: Sequence[tuple[float, float]], width: float, floor: float, ceiling: float,
                colour: object, gids: Sequence[str]) -> None:  # fmt: skip
    """A thick tick on the axis and the value above it for each mean too close to the floor to show as a bar."""
    tolerance = 0.004 * (ceiling - floor)
    for (x, mean), gid in zip(bars, gids, strict=True):
        if mean - floor > tolerance:
            continue
        (tick,) = ax.plot([x - width * 0.45, x + width * 0.45], [floor, floor], color=colour, linewidth=3.5,
                          solid_capstyle="butt", clip_on=False, zorder=4)  # fmt: skip
        tick.set_gid(f"floor:{gid}")
        ax.annotate(f"{mean:.2f}", (x, floor), xytext=(0, 3), textcoords="offset points", ha="center",
                    va="bottom", fontsize=6.5, color="#333333", rotation=90 if width < 0.2 else 0)  # fmt: skip


def _wrap_to_width(text: Text, max_px: float) -> None:
    """Break a title into as few lines as fit `max_px`, measured with the figure's renderer (character
    counts misjudge bold and wide glyphs): at its ` · ` separators first, inside a part only if need be."""
    renderer = text.get_figure().canvas.get_renderer()

    def fits(line: str) -> bool:
        text.set_text(line)
        return text.get_window_extent(renderer).width <= max_px

    lines: list[str] = []
    for part in text.get_text().split(" · "):
        if lines and fits(f"{lines[-1]} · {part}"):
            lines[-1] = f"{lines[-1]} · {part}"
        elif fits(part):
            lines.append(part)
        else:
            chars = len(part)
            while chars > 10 and not all(fits(line) for line in textwrap.wrap(part, chars)):
                chars = int(chars * 0.9)
            lines += textwrap.wrap(part, chars, break_long_words=False)
    text.set_text("\n".join(lines))


# --- every figure of a study ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureFile:
    """One rendered figure; `paths` maps a format (png, svg) to its file."""

    key: str
    title: str
    base_model: str
    task: str
    variant: str
    metric: str
    paths: dict[str, str] = field(default_factory=dict)
    note: str = ""  # how this metric relates to another of its task (`Agreement.caption`)


# Text stays text in SVG; hashes and fonts fixed so equal figures are byte-equal files.
_RC = {"svg.fonttype": "none", "svg.hashsalt": "polyglot", "font.family": "DejaVu Sans"}


def _save(fig: Figure, path: Path, fmt: str) -> None:
    buffer = io.BytesIO()
    # No creation date or software stamp in the file: equal figures are byte-equal files.
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    fig.savefig(buffer, format=fmt, dpi=150, metadata=metadata)
    write_file_atomically(path, [buffer.getvalue()])


def figure_file(
    fig: Figure, key: str, title: str, out_dir: Path, formats: Sequence[str], *, task: str = "", variant: str = "",
    metric: str = "",
) -> FigureFile:  # fmt: skip
    """`fig` saved as `<key>.<fmt>` under out_dir for each format, then closed: the report's record of it."""
    paths = {}
    try:
        for fmt in formats:
            _save(fig, out_dir / f"{key}.{fmt}", fmt)
            paths[fmt] = str(out_dir / f"{key}.{fmt}")
    finally:
        plt.close(fig)
    return FigureFile(key, title, "", task, variant, metric, paths)


def render_figures(
    cfg: StudyConfig, rows: Iterable[SummaryRow], out_dir: str | Path, formats: Sequence[str] | None = None
) -> list[FigureFile]:
    """One figure per (base model, task, variant, metric) in the rows, in `cfg.report.figure_formats`; a
    metric equal in every cell to an earlier one of its task is drawn in that one's figure instead."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    formats = list(formats or cfg.report.figure_formats)
    series: dict[tuple[str, str, str, str], list[SummaryRow]] = defaultdict(list)
    for row in rows:
        series[(row.base_model, row.task, row.variant, row.metric)].append(row)
    agreements = metric_agreements(row for group in series.values() for row in group)
    merged: dict[SeriesKey, list[str]] = defaultdict(list)
    for (base_model, task, variant, metric), agreement in agreements.items():
        if agreement.identical:
            merged[(base_model, task, variant, agreement.metric)].append(metric)
    figures = []
    with plt.rc_context(_RC):
        for series_key, group in series.items():
            base_model, task, variant, metric = series_key
            agreement = agreements.get(series_key)
            if agreement is not None and agreement.identical:
                continue  # drawn in the figure of the metric it equals
            key = cell_slug(base_model, task, variant, metric)
            title = figure_title(base_model, task, variant, metric, merged[series_key])
            fig = bar_figure(
                group,
                mixes=cfg.data.mixes.build,
                order=cfg.data.mixes.order,
                same_as=merged[series_key],
                pipeline_check=cfg.is_pipeline_check,
            )
            paths = {}
            try:
                for fmt in formats:
                    path = out_dir / f"{key}.{fmt}"
                    _save(fig, path, fmt)
                    paths[fmt] = str(path)
            finally:
                plt.close(fig)
            label = " = ".join(METRICS.get(name).label for name in (metric, *merged[series_key]))
            notes = [agreements[(*series_key[:3], m)].caption(METRICS.get(m).label) for m in merged[series_key]]
            if agreement is not None:
                notes.append(agreement.caption(label))
            figures.append(FigureFile(key, title, base_model, task, variant, metric, paths, " ".join(notes)))
    return figures


# --- training loss -------------------------------------------------------------------------------------


def loss_figure(curve: Sequence[Mapping[str, float]], title: str) -> bytes:
    """PNG of a training card's loss curve (`services.trainer.card.loss_curve`): loss by optimizer step."""
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(5.0, 2.6), layout="constrained")
        try:
            steps = [point["step"] for point in curve]
            ax.plot(steps, [point["loss"] for point in curve], marker="o", markersize=3.5, color="#14325c")
            ax.set_xlabel("step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole; one point must not get 0.96
            ax.set_ylabel("training loss")
            ax.yaxis.grid(True, color="#e3e3e3", linewidth=0.8)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            _wrap_to_width(ax.set_title(title, fontsize=9.5), 5.0 * fig.dpi * 0.96)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
        finally:
            plt.close(fig)
    return buffer.getvalue()


# --- language confusion ----------------------------------------------------------------------------------


def confusion_figure(
    rows: Sequence[str], columns: Sequence[str], counts: Sequence[Sequence[int]], title: str, *,
    pipeline_check: bool = False,
) -> Figure:  # fmt: skip
    """A heatmap of failing lines: one row per expected language (or `mix · language`), one column per
    language the lines were identified as, each cell its count, shaded by its share of the row (so a
    language with few failing lines still shows where they went)."""
    data = np.asarray(counts, dtype=float).reshape(len(rows), len(columns))
    totals = data.sum(axis=1, keepdims=True)
    shares = np.divide(data, totals, out=np.zeros_like(data), where=totals > 0)
    width = min(max(3.2 + 0.55 * len(columns), 5.0), 15.0)
    fig, ax = plt.subplots(figsize=(width, 1.6 + 0.38 * len(rows)), layout="constrained")
    ax.imshow(shares, cmap="Reds", vmin=0, vmax=1, aspect="auto")
    for (i, j), value in np.ndenumerate(data):
        if value:
            ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=8,
                    color="white" if shares[i, j] > 0.6 else "#222222")  # fmt: skip
    ax.set_xticks(range(len(columns)), columns, fontsize=8.5)
    ax.set_yticks(range(len(rows)), rows, fontsize=8.5)
    ax.set_xlabel("identified as (failing lines)")
    ax.set_ylabel("expected")
    ax.tick_params(length=0)
    heading = f"PIPELINE CHECK · {title}" if pipeline_check else title
    if pipeline_check:
        fig.text(0.5, 0.5, "PIPELINE CHECK", fontsize=30, color="#d62728", alpha=0.09, rotation=18,
                 ha="center", va="center", weight="bold")  # fmt: skip
    suptitle = fig.suptitle(heading, fontsize=10.5, weight="bold", color="#b00020" if pipeline_check else "black")
    _wrap_to_width(suptitle, width * fig.dpi * 0.96)
    subtitle = "cells: failing lines · shade: share of the row"
    ax.set_title(f"{PIPELINE_CHECK_NOTE}\n{subtitle}" if pipeline_check else subtitle, fontsize=8,
                 color="#b00020" if pipeline_check else "#555555")  # fmt: skip
    return fig


def confusion_figure_files(
    key: str, title: str, rows: Sequence[str], columns: Sequence[str], counts: Sequence[Sequence[int]],
    out_dir: str | Path, formats: Sequence[str], *, pipeline_check: bool = False, task: str = "", variant: str = "",
) -> FigureFile:  # fmt: skip
    """`confusion_figure` saved as `<key>.<fmt>` under out_dir, byte-stable like every figure here."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(_RC):
        fig = confusion_figure(rows, columns, counts, title, pipeline_check=pipeline_check)
        return figure_file(fig, key, title, out_dir, formats, task=task, variant=variant)
