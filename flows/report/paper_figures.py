"""Two comparisons of the paper's, drawn when a study's aggregate has the data for them:

- **the larger base model over the smaller** (the paper's Fig. 7, Llama 2 70B over 7B): for each task's first
  metric (chat: helpfulness), one slot per language and mix in which the smaller model's bar is drawn wide
  and light and the larger model's narrow and solid in front of it, so the gain from scale reads per cell.
  Drawn when the study has two or more base models of different size (sizes as `polyglot plan` estimates
  them) with a cell in common, or when `report.compare_with` names another study whose base model differs
  in size (flows/report/paper_compare.py: the paper's 7B and 70B runs are two configs);
- **language agreement heatmaps** (the paper's appendix): per base model and task, mix × language, shaded by
  the share of replies in the prompt's language (`lang_match`). Drawn for every task that has the metric.

The paper's Table 1 is not reproduced: its content could not be established from the sources at hand (the
searchable copies of arXiv 2312.12683 show only its opening; the paper's repository does not restate it).

    from flows.report import paper_figures
    sections = paper_figures.sections(cfg, aggregate_rows, out_dir)   # render.py lays them out in the report
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from flows.aggregate import SummaryRow, cell_slug, mix_sort_key
from flows.config import StudyConfig
from flows.evals import METRICS, TASKS
from flows.figures import _RC, PIPELINE_CHECK_NOTE, FigureFile, _colours, _wrap_to_width, figure_file, mix_label
from flows.report.paper_compare import OtherStudy, model_sizes, other_study
from services.common import languages

AGREEMENT_METRIC = "lang_match"
Cells = dict[tuple[str, str], SummaryRow]  # (mix, language) -> row


def _ordered_mixes(cfg: StudyConfig, present: set[str]) -> list[str]:
    build = [m for m in cfg.data.mixes.build if m in present]
    return build + sorted(present - set(build), key=mix_sort_key)


def _stamp(fig: Figure, heading: str, subtitle: str, ax, width: float, pipeline_check: bool) -> None:
    if pipeline_check:
        heading, subtitle = f"PIPELINE CHECK · {heading}", f"{PIPELINE_CHECK_NOTE}\n{subtitle}"
        fig.text(0.5, 0.5, "PIPELINE CHECK", fontsize=36, color="#d62728", alpha=0.09, rotation=18,
                 ha="center", va="center", weight="bold")  # fmt: skip
    suptitle = fig.suptitle(heading, fontsize=11, weight="bold", color="#b00020" if pipeline_check else "black")
    _wrap_to_width(suptitle, width * fig.dpi * 0.96)
    ax.set_title(subtitle, fontsize=8, color="#b00020" if pipeline_check else "#555555", pad=4)


# --- the larger model over the smaller ------------------------------------------------------------------


def overlay_figure(
    small: Cells, large: Cells, mixes: Sequence[str], names: tuple[str, str], title: str, *,
    pipeline_check: bool = False,
) -> Figure:  # fmt: skip
    """One slot per (language, mix) both models have: the smaller model's bar wide and light, the larger's
    narrow and solid in front. Bars carry gids `bar:<model>:<mix>:<language>`."""
    shared = small.keys() & large.keys()
    langs = languages.figure_order({lang for _, lang in shared})
    mixes = [m for m in mixes if any((m, lang) in shared for lang in langs)]
    metric = METRICS.get(next(iter(small.values())).metric)
    floor, ceiling = metric.range
    colours = _colours(mixes)
    slot = 0.8 / max(len(mixes), 1)
    width = min(max(3.0 + 0.18 * len(langs) * max(len(mixes), 1), 7.0), 15.0)  # inches: wider with more slots
    fig, ax = plt.subplots(figsize=(width, 4.8), layout="constrained")
    for m_index, mix in enumerate(mixes):
        for l_index, lang in enumerate(langs):
            if (mix, lang) not in shared:
                continue
            x = l_index - 0.4 + slot * (m_index + 0.5)
            for name, cells, share, alpha in ((names[0], small, 0.92, 0.35), (names[1], large, 0.5, 1.0)):
                row = cells[(mix, lang)]
                (bar,) = ax.bar([x], [row.mean - floor], width=slot * share, bottom=floor,
                                color=to_rgba(colours[mix], alpha), edgecolor=colours[mix], linewidth=0.7)  # fmt: skip
                bar.set_gid(f"bar:{name}:{mix}:{lang}")
                ax.errorbar([x], [row.mean], yerr=[[row.mean - row.ci_low], [row.ci_high - row.mean]], fmt="none",
                            ecolor="#222222" if alpha == 1.0 else "#8a8a8a", elinewidth=0.8, capsize=1.5)  # fmt: skip
    ax.set_xticks(range(len(langs)))
    ax.set_xticklabels([f"{code}\n{languages.get(code).name}" for code in langs], fontsize=8.5)
    ax.set_xlim(-0.6, len(langs) - 0.4)
    ax.set_ylim(floor, ceiling + 0.08 * (ceiling - floor))
    ax.set_ylabel(metric.label)
    ax.yaxis.grid(True, color="#e3e3e3", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles = [Patch(facecolor=colours[m], edgecolor=colours[m], label=mix_label(m)) for m in mixes]
    handles += [
        Patch(facecolor=to_rgba("#8c8c8c", 0.35), edgecolor="#8c8c8c", label=f"{names[0]} (wide, light)"),
        Patch(facecolor="#8c8c8c", edgecolor="#8c8c8c", label=f"{names[1]} (narrow, in front)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), frameon=False, fontsize=8.5)
    confidence = next(iter(small.values())).confidence
    _stamp(fig, title, f"bars: means over items and seeds · whiskers: {confidence:.0%} bootstrap CI", ax, width,
           pipeline_check)  # fmt: skip
    return fig


# --- language agreement ----------------------------------------------------------------------------------


def agreement_heatmap(cells: Cells, mixes: Sequence[str], title: str, *, pipeline_check: bool = False) -> Figure:
    """Mix (rows) × language (columns), each cell its share of replies in the prompt's language; an empty
    cell (no reply graded) is left blank."""
    langs = languages.figure_order({lang for _, lang in cells})
    mixes = [m for m in mixes if any((m, lang) in cells for lang in langs)]
    data = np.full((len(mixes), len(langs)), np.nan)
    for (mix, lang), row in cells.items():
        if mix in mixes:
            data[mixes.index(mix), langs.index(lang)] = row.mean
    width = min(max(3.5 + 0.6 * len(langs), 5.5), 15.0)
    fig, ax = plt.subplots(figsize=(width, 1.8 + 0.42 * len(mixes)), layout="constrained")
    image = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    image.set_gid("agreement")
    for (i, j), value in np.ndenumerate(data):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if value > 0.6 else "white", gid=f"cell:{mixes[i]}:{langs[j]}")  # fmt: skip
    ax.set_xticks(range(len(langs)), langs, fontsize=8.5)
    ax.set_yticks(range(len(mixes)), [mix_label(m) for m in mixes], fontsize=8.5)
    ax.tick_params(length=0)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02).set_label("share", fontsize=8)
    _stamp(fig, title, "cells: share of replies in the prompt's language", ax, width, pipeline_check)
    return fig


# --- into the report ---------------------------------------------------------------------------------------


def _series(rows: Sequence[SummaryRow]) -> dict[tuple[str, str, str, str], Cells]:
    series: dict[tuple[str, str, str, str], Cells] = defaultdict(dict)
    for r in rows:
        series[(r.base_model, r.task, r.variant, r.metric)][(r.mix, r.language)] = r
    return series


Overlay = tuple[FigureFile, Cells, Cells, tuple[str, str]]  # figure, smaller's cells, larger's, their names


def overlay_figures(
    cfg: StudyConfig, rows: Sequence[SummaryRow], out_dir: str | Path, other: OtherStudy | None = None
) -> list[Overlay]:
    """Each larger base model over the smallest, per task, variant and the task's first metric; `other`'s
    base models (another study's, `report.compare_with`) join this study's."""
    sizes = model_sizes(cfg)
    pipeline_check = cfg.is_pipeline_check
    if other is not None:
        sizes, rows, pipeline_check = sizes | other.sizes, [*rows, *other.rows], pipeline_check or other.pipeline_check
    present = sorted({r.base_model for r in rows if r.base_model in sizes}, key=lambda name: sizes[name])
    if len(present) < 2 or sizes[present[0]] == sizes[present[-1]]:
        return []
    small_name, series = present[0], _series(rows)
    out = []
    with plt.rc_context(_RC):
        for large_name in (n for n in present[1:] if sizes[n] > sizes[small_name]):
            for task in TASKS.names():
                metric = TASKS.get(task).metric_names()[0]
                for variant in sorted({r.variant for r in rows if r.task == task}):
                    small = series.get((small_name, task, variant, metric), {})
                    large = series.get((large_name, task, variant, metric), {})
                    if not small.keys() & large.keys():
                        continue
                    spec = TASKS.get(task)
                    parts = [spec.label, spec.variant_label(variant) if variant else "", METRICS.get(metric).label]
                    title = f"{large_name} over {small_name} · " + " · ".join(p for p in parts if p)
                    mixes = _ordered_mixes(cfg, {m for m, _ in small.keys() & large.keys()})
                    fig = overlay_figure(small, large, mixes, (small_name, large_name), title,
                                         pipeline_check=pipeline_check)  # fmt: skip
                    key = cell_slug(f"{large_name}-over-{small_name}", task, variant, metric)
                    figure = figure_file(fig, key, title, Path(out_dir), cfg.report.figure_formats, task=task,
                                         variant=variant, metric=metric)  # fmt: skip
                    out.append((figure, small, large, (small_name, large_name)))
    return out


def agreement_figures(
    cfg: StudyConfig, rows: Sequence[SummaryRow], out_dir: str | Path
) -> list[tuple[FigureFile, Cells]]:
    """One heatmap per base model, task and variant that has `lang_match` cells."""
    out = []
    with plt.rc_context(_RC):
        for (base_model, task, variant, metric), cells in sorted(_series(rows).items()):
            if metric != AGREEMENT_METRIC:
                continue
            spec = TASKS.get(task)
            parts = [base_model, spec.label, spec.variant_label(variant) if variant else "", METRICS.get(metric).label]
            title = " · ".join(p for p in parts if p)
            fig = agreement_heatmap(cells, _ordered_mixes(cfg, {m for m, _ in cells}), title,
                                    pipeline_check=cfg.is_pipeline_check)  # fmt: skip
            key = cell_slug(base_model, task, variant, "agreement-heatmap")
            formats = cfg.report.figure_formats
            figure = figure_file(fig, key, title, Path(out_dir), formats, task=task, variant=variant, metric=metric)
            out.append((figure, cells))
    return out


@dataclass(frozen=True)
class PaperTable:
    """A figure and its numbers: one row per language code, one text per column."""

    id: str
    title: str
    columns: list[str]
    rows: list[tuple[str, list[str]]]
    figure: FigureFile


@dataclass(frozen=True)
class PaperSection:
    id: str
    title: str
    tables: list[PaperTable] = field(default_factory=list)


def _number(metric: str, value: float) -> str:
    return f"{value:.2f}" if metric == "helpfulness" else f"{value:.3f}"


def sections(
    cfg: StudyConfig, rows: Sequence[SummaryRow], out_dir: str | Path, other: OtherStudy | None = None
) -> list[PaperSection]:
    """Both comparisons, figures written under `out_dir/figures` (none when the aggregate lacks their data).
    With `report.compare_with`, the other study's rows join the overlay: `other` when the caller has read
    them, else `paper_compare.other_study(cfg)`."""
    out_dir = Path(out_dir)
    result = []
    other = other or other_study(cfg)
    overlays = overlay_figures(cfg, rows, out_dir / "figures", other)
    if overlays:
        joined = f", with study {other.name} ({other.aggregate_uri})" if other is not None else ""
        section = PaperSection("model-scale", f"Larger base model over smaller (the paper's Fig. 7){joined}")
        for figure, small, large, (small_name, large_name) in overlays:
            shared = small.keys() & large.keys()
            mixes = _ordered_mixes(cfg, {m for m, _ in shared})
            columns = [f"{mix_label(m)}: {small_name} → {large_name}" for m in mixes]
            table = PaperTable(figure.key, figure.title, columns, [], figure)
            for lang in languages.figure_order({lang for _, lang in shared}):
                texts = []
                for mix in mixes:
                    if (mix, lang) not in shared:
                        texts.append("–")
                        continue
                    a, b = small[(mix, lang)].mean, large[(mix, lang)].mean
                    sign = "+" if b >= a else "−"
                    texts.append(f"{_number(figure.metric, a)} → {_number(figure.metric, b)} "
                                 f"({sign}{_number(figure.metric, abs(b - a))})")  # fmt: skip
                table.rows.append((lang, texts))
            section.tables.append(table)
        result.append(section)
    heatmaps = agreement_figures(cfg, rows, out_dir / "figures")
    if heatmaps:
        section = PaperSection("language-agreement", "Language agreement by mix and language (the paper's appendix)")
        for figure, cells in heatmaps:
            mixes = _ordered_mixes(cfg, {m for m, _ in cells})
            table = PaperTable(figure.key, figure.title, [mix_label(m) for m in mixes], [], figure)
            for lang in languages.figure_order({lang for _, lang in cells}):
                table.rows.append(
                    (lang, [f"{cells[(m, lang)].mean:.3f}" if (m, lang) in cells else "–" for m in mixes])
                )
            section.tables.append(table)
        result.append(section)
    return result
