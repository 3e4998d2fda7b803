"""X-CSQA (Lin et al., 2021): multiple-choice commonsense QA, answered with one letter (A-E).

Reads the published jsonl format, one file per language:
`{"id", "lang", "question": {"stem", "choices": [{"label", "text"}]}, "answerKey"}`, from the X-CSR release
(`source`, default `x-csr`: the hub copy, cached in the artifact store; see `flows/evals/xcsr.py`) or from
`<data_dir>/<lang>/dev.jsonl` (the release layout) or `<data_dir>/<lang>.jsonl`.

`template: paper` renders the paper's own prompts (`prepare_xcsqa_data.ipynb`, read from the fetched
sources by `flows/protocol`): its per-language template, options written `A: text`, the forced prefix `"`,
formatted and stripped as its notebook does, byte for byte.

The hook of `tasks/xcsqa.yaml`: its options, items and scoring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from flows.data import guanaco
from flows.evals import language_data, xcsr
from flows.evals.items import EvalItem
from flows.evals.registry import file_sha256
from flows.evals.sampling import sample
from flows.evals.scoring import LETTERS, extract_letter
from flows.evals.spec import TaskOptions
from services.common.config.types import HubIdOrPath, LocalPath
from services.common.errors import InvalidArgument, NotFound

NAME = "xcsqa"
FIELD = "evaluation.tasks.xcsqa.data_dir"


class Options(TaskOptions):
    source: HubIdOrPath | None = Field(
        xcsr.ALIAS,
        description="The X-CSR release's dev split: `x-csr` (the hub copy INK-USC/xcsr), a hub mirror "
        "`org/name`, the release archive's URL (https://inklab.usc.edu/XCSR/xcsr_datasets.zip) or a local copy "
        "of it (the zip or the unpacked folder). Remote copies are downloaded once into the artifact store. "
        "Unset when `data_dir` is set.",
        json_schema_extra={"by_inputs": True},  # its content enters eval-set keys through `inputs`, not its name
    )
    source_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="Pinned SHA-256 of the archive `source` downloads.",
        json_schema_extra={"by_inputs": True},
    )
    data_dir: LocalPath | None = Field(
        None, description="Directory of per-language jsonl files in the published X-CSQA format (instead of `source`)."
    )
    template: Literal["polyglot", "paper"] = Field(
        "polyglot",
        description="polyglot: templates/xcsqa.yaml's prompt (`A. text`, `Answer:`); paper: the paper's templates "
        "(`A: text`, forced prefix `\"`; prepare_xcsqa_data.ipynb, from protocol.sources).",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_source(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("data_dir") is not None:
            if data.get("source") is not None:
                raise ValueError("set one of `source` and `data_dir`, not both")
            data = {**data, "source": None}
        return data


@dataclass(frozen=True)
class XcsqaQuestion:
    id: str
    stem: str
    labels: tuple[str, ...]
    options: tuple[str, ...]
    answer: str  # the gold label, e.g. "B"


def data_file(data_dir: Path | None, language: str) -> Path:
    if data_dir is None:
        raise InvalidArgument("no X-CSQA data: set `source` (e.g. x-csr) or `data_dir`", field=FIELD)
    for candidate in (Path(data_dir) / language / "dev.jsonl", Path(data_dir) / f"{language}.jsonl"):
        if candidate.is_file():
            return candidate
    raise NotFound(
        f"no X-CSQA file for {language!r}: expected {data_dir}/{language}/dev.jsonl or {data_dir}/{language}.jsonl",
        field=FIELD,
    )


def read_jsonl(path: Path) -> list[XcsqaQuestion]:
    return parse_jsonl(Path(path).read_text(encoding="utf-8"), str(path))


def parse_jsonl(text: str, path: str) -> list[XcsqaQuestion]:
    """Questions of a jsonl text in the published format; `path` names it in errors."""
    questions = []
    for number, line in enumerate(text.splitlines(), start=1):
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


def build_prompt(question: XcsqaQuestion, language: str, template: str = "polyglot") -> tuple[str, str]:
    if template == "paper":
        from flows.protocol import render
        from flows.protocol.paper_texts import load_paper_texts

        return render.xcsqa_prompt(load_paper_texts().xcsqa, language, question.stem, question.options)
    data = language_data.entry(NAME, language)
    options = "\n".join(f"{label}. {text}" for label, text in zip(question.labels, question.options, strict=True))
    return guanaco.prompt(
        data["template"].format(question=question.stem.strip(), options=options)
    ), f" {data['prefix']}"


def load_questions(config: Options, language: str, store: Any = None) -> list[XcsqaQuestion]:
    if config.data_dir is not None or config.source is None:
        return read_jsonl(data_file(config.data_dir, language))
    text = xcsr.dev_jsonl(config.source, language, sha256=config.source_sha256, store=store)
    return parse_jsonl(text, f"{config.source} X-CSQA/{xcsr.release_code(language)}/dev.jsonl")


def inputs(config: Options, language: str, translator_model: str = "") -> dict[str, str]:
    if config.data_dir is not None or config.source is None:
        data = file_sha256(data_file(config.data_dir, language))
    else:
        data = xcsr.inputs_digest(config.source, config.source_sha256)
    if config.template == "paper":
        from flows.protocol.sources import load_pins

        pins = load_pins()
        return {"data": data, "template": f"paper@{pins.commit}:{pins.sha256[pins.roles['xcsqa']]}"}
    return {
        "data": data,
        "template": json.dumps(language_data.entry(NAME, language), sort_keys=True, ensure_ascii=False),
    }


def build_items(
    config: Options, language: str, *, seed: int, translator: Any = None, store: Any = None
) -> list[EvalItem]:
    questions = {q.id: q for q in load_questions(config, language, store)}
    chosen = sample(list(questions), config.sample_size, seed, NAME)
    items = []
    for qid in chosen:
        question = questions[qid]
        prompt, prefix = build_prompt(question, language, config.template)
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
