"""`polyglot confusion FILE`: line-level language confusion of replies you already have, on CPU, before any
judge is paid.

    polyglot confusion replies.jsonl                       # lid.176 in this process
    polyglot confusion replies.csv --lid 127.0.0.1:50051 --out confusion/

A file is JSON Lines or CSV, one reply a record: `reply` (or `response`, `output`, `completion`), `language`
(the language the reply should be in; or `expected_language`), and optionally `prompt`, `source` (the LCB
source, for its averaging) and `id`. Every record is validated first; a malformed one exits 2 naming its
line and field. Each reply is checked by the lid service's Language Confusion Benchmark check (the one
the study's confusion task uses, `flows.grading.check_lines`), so a file of 1,000 replies takes seconds:
- LPR: no line of 5+ tokens in another language (or identified with probability <= 0.3);
- WPR: among replies that pass LPR, for ar hi ja ko ru zh, no English word.
Scores average per (source, language), then per language, as the benchmark does, with a bootstrap
interval resampled within each source. The confusion matrix counts failing lines by expected language
and the language they were identified as (`flows.evals.confusion.drift`, as the study report does). No
record is lost: a reply lid refuses is listed as refused, one without a line of 5+ tokens (an empty one) as
skipped (the benchmark counts it in neither rate), and the counts in and out are printed.
"""

from __future__ import annotations

import csv
import io
import json
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flows import progress
from flows.aggregate import cluster_bootstrap
from flows.evals.confusion import drift, matrix_columns
from flows.grading import check_lines, line_sample
from flows.score import BadRecords, raw_records
from services.common import languages
from services.common.errors import InvalidArgument
from services.common.store.base import write_file_atomically

__all__ = [
    "FIELDS",
    "LanguageRow",
    "Record",
    "Verdict",
    "check_records",
    "confusion_matrix",
    "read_records",
    "summarize",
    "write_outputs",
]

MATRIX_COLUMNS = 12  # drift languages the terminal's matrix shows; the rest add up in `other`
# Our field ← the names it may have in a record, ours first.
FIELDS: dict[str, tuple[str, ...]] = {
    "reply": ("reply", "response", "output", "completion"),
    "language": ("language", "expected_language"),
    "prompt": ("prompt", "instruction"),
    "source": ("source",),
    "id": ("id", "item_id"),
}


@dataclass(frozen=True)
class Record:
    line: int
    id: str
    language: str
    reply: str
    prompt: str = ""
    source: str = ""


@dataclass(frozen=True)
class Verdict:
    """One record's check: `lid_lines` as a study's sample holds it (`flows.grading.line_sample`)."""

    record: Record
    lid_lines: dict[str, Any]

    @property
    def refused(self) -> str | None:
        return self.lid_lines.get("error")

    @property
    def skipped(self) -> bool:
        """No line of 5+ tokens: the benchmark counts the reply in neither LPR nor WPR."""
        return not self.refused and self.lid_lines["line_pass"] is None

    @property
    def lpr(self) -> float | None:
        return None if self.refused or self.skipped else float(self.lid_lines["line_pass"])

    @property
    def wpr(self) -> float | None:
        if self.refused or not self.lid_lines["line_pass"] or self.lid_lines.get("word_pass") is None:
            return None
        return float(bool(self.lid_lines["word_pass"]))


# -- reading --------------------------------------------------------------------------------------------------


def _get(record: Mapping[str, Any], name: str) -> Any:
    return next((record[alias] for alias in FIELDS[name] if record.get(alias) is not None), None)


def _string(value: Any, name: str, *, required: bool) -> str:
    if value is None:
        if required:
            raise InvalidArgument(f"is missing (also read as: {', '.join(FIELDS[name][1:]) or 'none'})", field=name)
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"must be a string, got {type(value).__name__}", field=name)
    return value


def to_record(line: int, raw: Any, default_language: str | None = None) -> Record:
    """One JSON object or CSV row as a Record, or InvalidArgument naming the field."""
    if isinstance(raw, Exception):
        raise raw
    if not isinstance(raw, dict):
        raise InvalidArgument(f"must be a JSON object, got {type(raw).__name__}", field="(record)")
    reply = _string(_get(raw, "reply"), "reply", required=True)
    given = _get(raw, "language")
    if given in (None, "") and default_language:
        given = default_language
    language = languages.lookup(_string(given or None, "language", required=True), "language")  # any ISO code
    ident = _get(raw, "id")
    return Record(
        line=line,
        id=str(ident) if ident not in (None, "") else f"line-{line}",
        language=language.code,
        reply=reply,
        prompt=_string(_get(raw, "prompt"), "prompt", required=False),
        source=_string(_get(raw, "source"), "source", required=False),
    )


def read_records(path: Path, default_language: str | None = None) -> list[Record]:
    """Every record of a JSONL or CSV file, validated; BadRecords lists every bad line and field."""
    records, problems = [], []
    for line, raw in raw_records(path):
        try:
            records.append(to_record(line, raw, default_language))
        except InvalidArgument as exc:
            problems.append((line, exc.field or "(record)", exc.message))
    if problems:
        raise BadRecords(str(path), problems)
    if not records:
        raise InvalidArgument(f"{path} holds no records", field="FILE")
    return records


def language_order(codes: Iterable[str]) -> list[str]:
    """The registry's languages in figure order, then any other ISO code alphabetically."""
    codes = set(codes)
    known = [code for code in codes if languages.resolve(code) is not None and languages.resolve(code).code == code]
    return languages.figure_order(known) + sorted(codes - set(known))


def language_label(code: str) -> str:
    name = languages.lookup(code).name
    return f"{code} · {name}" if name else code


# -- checking and scoring -------------------------------------------------------------------------------------


def check_records(records: Sequence[Record], lid: Any) -> list[Verdict]:
    """Each record's lid check, in order (`lid`: a LidClient or the in-process LanguageIdentifier); progress
    as `ScoringProgress` events (`flows.progress`)."""
    checks = check_lines(
        lid, [r.reply for r in records], [r.language for r in records], progress=progress.report_scoring
    )
    return [Verdict(r, line_sample(c)) for r, c in zip(records, checks, strict=True)]


@dataclass(frozen=True)
class Rate:
    mean: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class LanguageRow:
    """One language: records in, refused by lid, and LPR / WPR averaged per source, then over sources."""

    language: str
    records: int
    refused: int
    skipped: int
    sources: list[str]
    lpr: Rate | None
    wpr: Rate | None
    failing_lines: int
    checked_lines: int


def _rate(by_source: Mapping[str, list[float]], n_resamples: int, confidence: float, key: str) -> Rate | None:
    strata = [np.asarray(values, dtype=float) for _, values in sorted(by_source.items()) if values]
    if not strata:
        return None
    mean = float(np.mean([s.mean() for s in strata]))
    if sum(len(s) for s in strata) < 2:
        return Rate(mean, mean, mean, sum(map(len, strata)))
    rng = np.random.default_rng([0, zlib.crc32(key.encode("utf-8"))])  # stable per language and metric
    replicates = np.mean([cluster_bootstrap(s, np.ones_like(s), n_resamples, rng) for s in strata], axis=0)
    alpha = 1.0 - confidence
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return Rate(mean, min(float(low), mean), max(float(high), mean), sum(map(len, strata)))


def summarize(verdicts: Iterable[Verdict], *, confidence: float = 0.95, n_resamples: int = 1000) -> list[LanguageRow]:
    """One row per language, in the figures' language order."""
    by_language: dict[str, list[Verdict]] = defaultdict(list)
    for v in verdicts:
        by_language[v.record.language].append(v)
    rows = []
    for code in language_order(by_language):
        group = by_language[code]
        lpr: dict[str, list[float]] = defaultdict(list)
        wpr: dict[str, list[float]] = defaultdict(list)
        for v in group:
            if v.lpr is not None:
                lpr[v.record.source].append(v.lpr)
            if v.wpr is not None:
                wpr[v.record.source].append(v.wpr)
        lines = [line for v in group if not v.refused for line in v.lid_lines["lines"]]
        rows.append(
            LanguageRow(
                language=code,
                records=len(group),
                refused=sum(1 for v in group if v.refused),
                skipped=sum(1 for v in group if v.skipped),
                sources=sorted({v.record.source for v in group}),
                lpr=_rate(lpr, n_resamples, confidence, f"{code}:lpr"),
                wpr=_rate(wpr, n_resamples, confidence, f"{code}:wpr"),
                failing_lines=sum(1 for line in lines if not line["passed"]),
                checked_lines=len(lines),
            )
        )
    return rows


def confusion_matrix(verdicts: Iterable[Verdict]) -> dict[str, Counter]:
    """Expected language -> Counter of the languages its failing lines were identified as."""
    matrix: dict[str, Counter] = {}
    for v in verdicts:
        row = matrix.setdefault(v.record.language, Counter())
        for line in () if v.refused else v.lid_lines["lines"]:
            if not line["passed"]:
                row[drift(line, v.record.language)] += 1
    return matrix


# -- writing --------------------------------------------------------------------------------------------------


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _fmt(rate: Rate | None) -> list[Any]:
    if rate is None:
        return ["", "", "", 0]
    return [round(rate.mean, 6), round(rate.ci_low, 6), round(rate.ci_high, 6), rate.n]


def write_outputs(
    out_dir: Path,
    verdicts: Sequence[Verdict],
    rows: Sequence[LanguageRow],
    matrix: Mapping[str, Counter],
    *,
    formats: Sequence[str] = ("png", "svg"),
) -> dict[str, Path]:
    """records.jsonl (every record with its check), table.csv, matrix.csv, confusion.json and the matrix
    figure under out_dir; returns what was written."""
    from flows.figures import confusion_figure_files

    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    records = "".join(
        json.dumps(asdict(v.record) | {"lid_lines": v.lid_lines}, ensure_ascii=False) + "\n" for v in verdicts
    )
    write_file_atomically(out_dir / "records.jsonl", [records.encode("utf-8")])
    written["records"] = out_dir / "records.jsonl"
    rates = [f"{m}{suffix}" for m in ("lpr", "wpr") for suffix in ("", "_low", "_high", "_n")]
    header = ["language", "records", "refused", "skipped", *rates, "failing_lines", "checked_lines"]
    table = [[r.language, r.records, r.refused, r.skipped, *_fmt(r.lpr), *_fmt(r.wpr), r.failing_lines, r.checked_lines]
             for r in rows]  # fmt: skip
    write_file_atomically(out_dir / "table.csv", [_csv(header, table)])
    written["table"] = out_dir / "table.csv"
    columns = matrix_columns(matrix)
    counts = [[matrix[code][c] for c in columns] for code in matrix]
    matrix_rows = ([code, *row] for code, row in zip(matrix, counts, strict=True))
    write_file_atomically(out_dir / "matrix.csv", [_csv(["expected", *columns], matrix_rows)])
    written["matrix"] = out_dir / "matrix.csv"
    summary = {"languages": [asdict(r) for r in rows], "matrix": {code: dict(row) for code, row in matrix.items()}}
    write_file_atomically(out_dir / "confusion.json", [json.dumps(summary, indent=1, ensure_ascii=False).encode()])
    written["json"] = out_dir / "confusion.json"
    if columns:
        figure = confusion_figure_files(
            "confusion-matrix", "Failing lines by expected language and the language identified",
            list(matrix), columns, counts, out_dir / "figures", formats,
        )  # fmt: skip
        written.update({f"figure ({fmt})": Path(path) for fmt, path in figure.paths.items()})
    return written


# -- the terminal ---------------------------------------------------------------------------------------------


def _rate_text(rate: Rate | None) -> str:
    return "–" if rate is None else f"{rate.mean:.3f} [{rate.ci_low:.3f}, {rate.ci_high:.3f}]"


def rich_tables(rows: Sequence[LanguageRow], matrix: Mapping[str, Counter], confidence: float = 0.95) -> list[Any]:
    """The per-language table and the confusion matrix as rich Tables, for `polyglot confusion`."""
    from rich.table import Table

    table = Table(title=f"Language confusion per language (mean over sources, {confidence:.0%} bootstrap CI)")
    for name in ("language", "records", "refused", "skipped", "LPR", "n", "WPR", "n", "failing lines"):
        table.add_column(name, justify="left" if name == "language" else "right")
    for r in rows:
        lines = f"{r.failing_lines} of {r.checked_lines}"
        counts = [str(n) for n in (r.records, r.refused, r.skipped)]
        table.add_row(language_label(r.language), *counts, _rate_text(r.lpr),
                      str(r.lpr.n if r.lpr else 0), _rate_text(r.wpr), str(r.wpr.n if r.wpr else 0), lines)  # fmt: skip
    columns = matrix_columns(matrix)
    shown, rest = columns[:MATRIX_COLUMNS], columns[MATRIX_COLUMNS:]  # matrix.csv has every column
    grid = Table(title="Failing lines: expected language (rows) × language identified (columns)")
    grid.add_column("expected")
    for column in [*shown, *(["other"] if rest else [])]:
        grid.add_column(column, justify="right")
    for code, row in matrix.items():
        other = [str(sum(row[c] for c in rest) or "·")] if rest else []
        grid.add_row(code, *(str(row[c]) if row[c] else "·" for c in shown), *other)
    return [table, grid]
