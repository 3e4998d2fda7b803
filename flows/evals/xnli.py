"""XNLI (Conneau et al., 2018) as lm-evaluation-harness scores it: argmax of choice log-likelihoods.

Each item has no prompt and three sentences, one per label (entailment, neutral, contradiction):
`premise, <right>? <Yes|Also|No>, hypothesis` in the item's language (words in templates/xnli.yaml, the
same in both harness versions). The prediction is the most likely sentence. Two request formats:

- `lm-eval-0.4` (Polyglot's default): each sentence is a `loglikelihood` continuation of an empty context
  with the target delimiter " " in front, as `lm_eval --tasks xnli_<lang>` 0.4 sends it (context: BOS).
- `lm-eval-0.3`: the harness at commit 3ccea2b2, which the paper ran, scores each whole sentence with
  `loglikelihood_rolling`: no delimiter, every token of the sentence counted. Its `hf-causal` model
  (`gpt2.HFLM`) encodes the sentence without special tokens and starts the window with its end-of-text
  token (`eot_token_id` = the tokenizer's EOS; Llama: `</s>`), so the model reads `[EOS] + tokens[:-1]` and
  every token is scored (one window: XNLI sentences are far below the 4,096-token context). Here that is the
  sentence as the continuation of an empty context, scored with `start_token="eos"` (`score_options`).

`split`: the paper scores the test split (5,010 pairs per language; 0.3's evaluator takes a task's test
docs when it has them); Polyglot's default is the validation split (2,490).

The hook of `tasks/xnli.yaml`: its options, items and scoring.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

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


REQUEST_FORMATS = ("lm-eval-0.4", "lm-eval-0.3")
_FILE_SPLIT = {"validation": "dev", "test": "test"}  # XNLI's own file names


class Options(TaskOptions):
    data_dir: LocalPath | None = Field(
        None,
        description="Directory of xnli_<dev|test>-<lang>.tsv (premise, hypothesis, label) for the chosen split; "
        "null = the hub copy.",
    )
    # `by_inputs`: `inputs` names them when they are not the default, so existing eval sets keep their keys.
    split: Literal["validation", "test"] = Field(
        "validation",
        description="XNLI split to score: validation (2,490 per language) or test (5,010; the paper's).",
        json_schema_extra={"by_inputs": True},
    )
    request_format: Literal["lm-eval-0.4", "lm-eval-0.3"] = Field(
        "lm-eval-0.4",
        json_schema_extra={"by_inputs": True},
        description="lm-eval-0.4: each sentence after the target delimiter \" \" (lm-eval 0.4); lm-eval-0.3: the "
        "whole sentence without it, as the harness at 3ccea2b2 (the paper's) scores it with loglikelihood_rolling.",
    )


def data_file(data_dir: Path, language: str, split: str = "validation") -> Path:
    path = Path(data_dir) / f"xnli_{_FILE_SPLIT[split]}-{language}.tsv"
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


def read_hub(language: str, split: str = "validation") -> list[tuple[str, str, int]]:
    import datasets

    rows = datasets.load_dataset(HUB_ID, language, split=split)
    return [(r["premise"], r["hypothesis"], int(r["label"])) for r in rows]


def continuations(premise: str, hypothesis: str, language: str, request_format: str = "lm-eval-0.4") -> list[str]:
    """The three scored continuations: lm-eval 0.4's `doc_to_choice` plus its target delimiter, or (0.3) the
    whole sentences its `loglikelihood_rolling` scores."""
    words = language_data.entry(NAME, language)
    question = words["question_word"]
    delimiter = TARGET_DELIMITER if request_format == "lm-eval-0.4" else ""
    return [f"{delimiter}{premise}, {question}? {words[label]}, {hypothesis}" for label in LABELS]


def score_options(config: Options) -> dict[str, str]:
    """Keyword arguments of the generator's Score for this task's requests: lm-eval 0.3's sequences start
    with EOS (its hf-causal `prefix_token`), 0.4's with BOS (the Score default)."""
    return {"start_token": "eos"} if config.request_format == "lm-eval-0.3" else {}


def inputs(config: Options, language: str, translator_model: str = "") -> dict[str, str]:
    split = config.split
    data = file_sha256(data_file(config.data_dir, language, split)) if config.data_dir else f"hub:{HUB_ID}"
    identity = {
        "data": data,
        "words": json.dumps(language_data.entry(NAME, language), sort_keys=True, ensure_ascii=False),
    }
    if split != "validation":
        identity["split"] = split
    if config.request_format != "lm-eval-0.4":
        identity["request_format"] = config.request_format
        # The scored sequence's first token too: eval sets (and so shards) keyed before it was EOS stay apart.
        identity.update(score_options(config))
    return identity


def build_items(config: Options, language: str, *, seed: int, translator: Any = None) -> list[EvalItem]:
    language_data.entry(NAME, language)  # fail early, naming the file, for a language without words
    split = config.split
    rows = read_tsv(data_file(config.data_dir, language, split)) if config.data_dir else read_hub(language, split)
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
                choices=continuations(premise, hypothesis, language, config.request_format),
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
