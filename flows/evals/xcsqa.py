"""X-CSQA (Lin et al., 2021): multiple-choice commonsense QA, answered with one letter (A-E).

Reads the published jsonl format, one file per language:
`{"id", "lang", "question": {"stem", "choices": [{"label", "text"}]}, "answerKey"}`, found as
`<data_dir>/<lang>/dev.jsonl` (the release layout) or `<data_dir>/<lang>.jsonl`.

The hook of `tasks/xcsqa.yaml`: its options, items and scoring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from flows.data import guanaco
from flows.evals import language_data
from flows.evals.items import EvalItem
from flows.evals.registry import file_sha256
from flows.evals.sampling import sample
from flows.evals.scoring import LETTERS, extract_letter
from flows.evals.spec import TaskOptions
from services.common.config.types import LocalPath
from services.common.errors import InvalidArgument, NotFound

NAME = "xcsqa"
FIELD = "evaluation.tasks.xcsqa.data_dir"


class Options(TaskOptions):
    data_dir: LocalPath | None = Field(
        None, description="Directory of per-language jsonl files in the published X-CSQA format."
    )


@dataclass(frozen=True)
class XcsqaQuestion:
    id: str
    stem: str
    labels: tuple[str, ...]
    options: tuple[str, ...]
    answer: str  # the gold label, e.g. "B"


def data_file(data_dir: Path | None, language: str) -> Path:
    if data_dir is None:
        raise InvalidArgument("X-CSQA has no hub copy in its published format: set the directory", field=FIELD)
    for candidate in (Path(data_dir) / language / "dev.jsonl", Path(data_dir) / f"{language}.jsonl"):
        if candidate.is_file():
            return candidate
    raise NotFound(
        f"no X-CSQA file for {language!r}: expected {data_dir}/{language}/dev.jsonl or {data_dir}/{language}.jsonl",
        field=FIELD,
    )


def read_jsonl(path: Path) -> list[XcsqaQuestion]:
    questions = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            choices = sorted(record["question"]["choices"], key=lambda c: c["label"])
            question = XcsqaQuestion(
                str(record["id"]),
                record["question"]["stem"],
                tuple(c["label"] for c in choices),
                tuple(c["text"] for c in choices),
                record["answerKey"],
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InvalidArgument(f"{path}:{number}: not an X-CSQA record ({exc!r})", field=FIELD) from None
        if question.answer not in question.labels:
            raise InvalidArgument(f"{path}:{number}: answerKey {question.answer!r} is not a choice label", field=FIELD)
        questions.append(question)
    return questions


def build_prompt(question: XcsqaQuestion, language: str) -> tuple[str, str]:
    data = language_data.entry(NAME, language)
    options = "\n".join(f"{label}. {text}" for label, text in zip(question.labels, question.options, strict=True))
    return guanaco.prompt(
        data["template"].format(question=question.stem.strip(), options=options)
    ), f" {data['prefix']}"


def inputs(config: Options, language: str, translator_model: str = "") -> dict[str, str]:
    return {
        "data": file_sha256(data_file(config.data_dir, language)),
        "template": json.dumps(language_data.entry(NAME, language), sort_keys=True, ensure_ascii=False),
    }


def build_items(config: Options, language: str, *, seed: int, translator: Any = None) -> list[EvalItem]:
    questions = {q.id: q for q in read_jsonl(data_file(config.data_dir, language))}
    chosen = sample(list(questions), config.sample_size, seed, NAME)
    items = []
    for qid in chosen:
        question = questions[qid]
        prompt, prefix = build_prompt(question, language)
        items.append(
            EvalItem(
                id=qid,
                task=NAME,
                language=language,
                prompt=prompt,
                response_prefix=prefix,
                question=question.stem,
                choices=list(question.options),
                answers=[question.answer],
                label=question.labels.index(question.answer),
                source="human",
            )
        )
    return items


def score(item: EvalItem, output: str) -> dict[str, float]:
    letter = extract_letter(output, item.choices, LETTERS[: len(item.choices)])
    # No extractable letter counts as wrong, as any answer that is not the gold letter.
    return {"accuracy": float(letter == item.answers[0])}
