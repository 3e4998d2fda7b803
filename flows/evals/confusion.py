"""Language confusion (Marchisio et al., 2024, "Understanding and Mitigating Language Confusion in LLMs"):
does a model reply in the language the user wants, line by line?

The Language Confusion Benchmark's released test sets (`<data_dir>/test_sets/{monolingual,crosslingual}/
<source>/<lang>.csv`, a `prompt` column plus metadata) are the items:
- monolingual: a prompt written in the language (okapi, dolly, aya, native), the reply should be in it;
- crosslingual: an English prompt that asks for a reply in the language (okapi, sharegpt, complex_prompts).
The two settings are the task's variants. A sample of `sample_size` prompts per language and setting is
spread evenly over the sources, so the pooled mean of a (setting, language) cell is the benchmark's
"average over sources" for LPR when the size divides evenly (a seeded draw picks the sources that get one
more when it does not).

Replies are checked by the lid service (`metric="lcb"`), which applies the benchmark's rules:
- LPR (line-level pass): no line of 5+ tokens is in another language (or identified with probability
  <= 0.3);
- WPR (word-level pass): for ar hi ja ko ru zh, a reply without line errors has no English word
  (the service's word list).
Each reply's per-line labels are in its sample (`lid_lines`); `drift` names where a failing line went, which
the report's confusion matrices and `polyglot confusion` count (`flows.confusion`).

The hook of `tasks/confusion.yaml`.

    .venv/bin/python -c "from flows.evals import TASKS; print(TASKS.get('confusion').options(languages=['fr']))"
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from flows.data import guanaco
from flows.evals.items import EvalItem
from flows.evals.registry import file_sha256
from flows.evals.sampling import sample
from flows.evals.spec import TaskOptions
from services.common.config.types import LocalPath
from services.common.errors import InvalidArgument, NotFound

NAME = "confusion"
SETTINGS = ("monolingual", "crosslingual")
# The label of a failing line whose top language is the expected one, identified with too little
# confidence to count (LCB: probability <= 0.3): it drifted nowhere in particular.
UNSURE = "unsure"


class Options(TaskOptions):
    settings: list[Literal["monolingual", "crosslingual"]] = Field(
        list(SETTINGS),
        min_length=1,
        description="monolingual: prompts written in the language; crosslingual: English prompts asking for a "
        "reply in it.",
    )
    data_dir: LocalPath = Field(
        description="The Language Confusion Benchmark's directory (its `test_sets/` inside), e.g. ../shared/data/lcb."
    )
    sources: list[str] | None = Field(
        None, description="Only these sources (okapi, dolly, aya, native, sharegpt, complex_prompts); null = all."
    )


def word_list(options: Options) -> Path | None:
    """The benchmark's English word list (`words` beside `test_sets/`), which the lid service needs for WPR
    (its `POLYGLOT_LID_WORD_LIST`); None when this copy of the benchmark lacks it."""
    path = Path(options.data_dir) / "words"
    return path.resolve() if path.is_file() else None


@dataclass(frozen=True)
class Prompt:
    id: str  # <setting>/<source>/<row>, row counted from 0 in the file
    setting: str
    source: str
    text: str


def source_files(data_dir: Path, setting: str, language: str, sources: Iterable[str] | None = None) -> list[Path]:
    """The CSV files of one setting and language, by source name; a language a source lacks is skipped."""
    root = Path(data_dir) / "test_sets" / setting
    if not root.is_dir():
        raise NotFound(f"{root} does not exist: not an LCB directory", field="evaluation.tasks.confusion.data_dir")
    wanted = set(sources) if sources is not None else None
    return [
        path / f"{language}.csv"
        for path in sorted(root.iterdir())
        if path.is_dir() and (wanted is None or path.name in wanted) and (path / f"{language}.csv").is_file()
    ]


def read_prompts(path: Path, setting: str) -> list[Prompt]:
    """The prompts of one LCB file, in file order (the source is its directory's name)."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and "prompt" not in rows[0]:
        raise InvalidArgument(f"{path} has no `prompt` column", field="evaluation.tasks.confusion.data_dir")
    source = path.parent.name
    return [
        Prompt(f"{setting}/{source}/{row:03d}", setting, source, record["prompt"].strip())
        for row, record in enumerate(rows)
        if (record.get("prompt") or "").strip()
    ]


def _files(config: Options, language: str) -> dict[str, list[Path]]:
    return {s: source_files(config.data_dir, s, language, config.sources) for s in config.settings}


def inputs(config: Options, language: str, translator_model: str = "") -> dict[str, str]:
    identity = {
        f"{setting}/{path.parent.name}": file_sha256(path)
        for setting, paths in _files(config, language).items()
        for path in paths
    }
    identity["sources"] = json.dumps(config.sources)
    return identity


def quotas(size: int | None, sources: list[str], seed: int, tag: str) -> dict[str, int | None]:
    """Prompts to draw from each source: `size` spread evenly, the remainder to a seeded choice of sources;
    None (every prompt) for each when `size` is None."""
    if size is None or not sources:
        return dict.fromkeys(sources)
    base, extra = divmod(size, len(sources))
    lucky = set(random.Random(f"{seed}:{tag}").sample(sorted(sources), extra))
    return {source: base + (source in lucky) for source in sources}


def build_items(config: Options, language: str, *, seed: int, translator: Any = None) -> list[EvalItem]:
    items = []
    for setting, paths in _files(config, language).items():
        wanted = quotas(config.sample_size, [path.parent.name for path in paths], seed, f"{NAME}/{setting}")
        for path in paths:
            prompts = {p.id: p for p in read_prompts(path, setting)}
            if wanted[path.parent.name] == 0:
                continue
            chosen = sample(list(prompts), wanted[path.parent.name], seed, f"{NAME}/{setting}/{path.parent.name}")
            items.extend(
                EvalItem(
                    id=item_id,
                    task=NAME,
                    language=language,
                    mode=setting,
                    prompt=guanaco.prompt(prompts[item_id].text),
                    instruction=prompts[item_id].text,
                    source=f"lcb:{prompts[item_id].source}",
                )
                for item_id in chosen
            )
    if not items:
        raise InvalidArgument(
            f"the Language Confusion Benchmark has no {language!r} prompts in {', '.join(config.settings)}"
            + (f" from {', '.join(config.sources)}" if config.sources else ""),
            field="evaluation.tasks.confusion.languages",
        )
    return items


# -- grading ------------------------------------------------------------------------------------------------


def lid_metrics(check: Any) -> dict[str, float]:
    """LPR and WPR of one reply from the lid service's lcb check (`LanguageCheck` with `metric="lcb"`):
    `wpr` only where the benchmark counts it (ar hi ja ko ru zh, a reply without line errors, and the lid
    service has a word list); none for a reply with no line of 5+ tokens, which the benchmark skips."""
    if check.line_pass is None:
        return {}
    metrics = {"lpr": float(check.line_pass)}
    if check.line_pass and check.word_pass is not None:
        metrics["wpr"] = float(check.word_pass)
    return metrics


def drift(line: Mapping[str, Any], expected: str) -> str:
    """Where a failing line went: its top language, or `unsure` when that is the expected one (a line
    identified as the right language with too little confidence)."""
    language = line.get("language") or line.get("raw_label") or "und"
    return UNSURE if language == expected else language


def matrix_columns(matrix: Mapping[str, Counter]) -> list[str]:
    """Drift languages, most failing lines first (then by name): the columns of a matrix table."""
    totals: Counter = Counter()
    for row in matrix.values():
        totals.update(row)
    return sorted(totals, key=lambda code: (-totals[code], code))


# -- the study's sample logs --------------------------------------------------------------------------------


@dataclass
class LineStats:
    """Line checks of one report cell's replies (every seed): how many passed, where failing lines went."""

    replies: int = 0  # replies with a line to check (lid refused none of them)
    passed: int = 0  # replies without a failing line (LPR)
    refused: int = 0
    skipped: int = 0  # no line of 5+ tokens: the benchmark skips them
    lines: int = 0
    failing: int = 0
    drift: Counter = field(default_factory=Counter)

    def add(self, sample: Mapping[str, Any]) -> None:
        check = sample.get("lid_lines")
        if not check:
            return
        if check.get("error"):
            self.refused += 1
            return
        if check["line_pass"] is None:
            self.skipped += 1
            return
        self.replies += 1
        self.passed += bool(check["line_pass"])
        for line in check["lines"]:
            self.lines += 1
            if not line["passed"]:
                self.failing += 1
                self.drift[drift(line, sample["language"])] += 1


def line_stats(samples: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str, str, str], LineStats]:
    """Per report cell (base model, mix, task, variant, language): its replies' line checks."""
    stats: dict[tuple[str, str, str, str, str], LineStats] = defaultdict(LineStats)
    for s in samples:
        if s.get("lid_lines"):
            stats[(s["base_model"], s["mix"], s["task"], s["variant"], s["language"])].add(s)
    return dict(stats)
