"""XNLI (Conneau et al., 2018) as lm-evaluation-harness scores it: argmax of choice log-likelihoods.

Each item has no prompt and three continuations, one per label (entailment, neutral, contradiction):
`premise, <right>? <Yes|Also|No>, hypothesis` in the item's language (words in templates/xnli.yaml),
each with lm-eval's target delimiter " " in front, exactly the requests `lm_eval --tasks xnli_<lang>`
sends. The prediction is the most likely continuation.

The hook of `tasks/xnli.yaml`: its options, items and scoring.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from flows.evals import language_data
from flows.evals.items import EvalItem
from flows.evals.registry import file_sha256
from flows.evals.sampling import sample
from flows.evals.scoring import argmax_choice
from flows.evals.spec import TaskOptions
from services.common.config.types import LocalPath
from services.common.errors import InvalidArgument, NotFound

NAME = "xnli"
HUB_ID = "facebook/xnli"
LABELS = ("entailment", "neutral", "contradiction")
TARGET_DELIMITER = " "  # lm-eval's default, put before every multiple-choice continuation


class Options(TaskOptions):
    data_dir: LocalPath | None = Field(
        None, description="Directory of xnli_dev-<lang>.tsv (premise, hypothesis, label); null = the hub copy."
    )


def data_file(data_dir: Path, language: str) -> Path:
    path = Path(data_dir) / f"xnli_dev-{language}.tsv"
    if not path.is_file():
        raise NotFound(f"XNLI file {path} does not exist", field="evaluation.tasks.xnli.data_dir")
    return path


def read_tsv(path: Path) -> list[tuple[str, str, int]]:
    """(premise, hypothesis, label index) rows of `premise<TAB>hypothesis<TAB>label`, no header."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3 or parts[2].strip() not in LABELS:
            raise InvalidArgument(
                f"{path}:{number}: expected premise<TAB>hypothesis<TAB>label", field="evaluation.tasks.xnli.data_dir"
            )
        rows.append((parts[0], parts[1], LABELS.index(parts[2].strip())))
    return rows


def read_hub(language: str) -> list[tuple[str, str, int]]:
    import datasets

    rows = datasets.load_dataset(HUB_ID, language, split="validation")
    return [(r["premise"], r["hypothesis"], int(r["label"])) for r in rows]


def continuations(premise: str, hypothesis: str, language: str) -> list[str]:
    """The three scored continuations, as lm-eval's `doc_to_choice` plus its target delimiter."""
    words = language_data.entry(NAME, language)
    question = words["question_word"]
    return [f"{TARGET_DELIMITER}{premise}, {question}? {words[label]}, {hypothesis}" for label in LABELS]


def inputs(config: Options, language: str, translator_model: str = "") -> dict[str, str]:
    data = file_sha256(data_file(config.data_dir, language)) if config.data_dir else f"hub:{HUB_ID}"
    return {
        "data": data,
        "words": json.dumps(language_data.entry(NAME, language), sort_keys=True, ensure_ascii=False),
    }


def build_items(config: Options, language: str, *, seed: int, translator: Any = None) -> list[EvalItem]:
    language_data.entry(NAME, language)  # fail early, naming the file, for a language without words
    rows = read_tsv(data_file(config.data_dir, language)) if config.data_dir else read_hub(language)
    ids = [f"{index:04d}" for index in range(len(rows))]  # XNLI is parallel: row i is the same pair
    chosen = sample(ids, config.sample_size, seed, NAME)
    items = []
    for item_id in chosen:
        premise, hypothesis, label = rows[int(item_id)]
        items.append(
            EvalItem(
                id=item_id,
                task=NAME,
                language=language,
                prompt="",
                choices=continuations(premise, hypothesis, language),
                answers=[LABELS[label]],
                label=label,
                source="human",
            )
        )
    return items


def score(item: EvalItem, output: list[float]) -> dict[str, float]:
    if len(output) != len(item.choices):
        raise ValueError(f"{item.id}: {len(output)} log-likelihoods for {len(item.choices)} choices")
    return {"accuracy": float(argmax_choice(output) == item.label)}
