"""XQuAD (Artetxe et al., 2020): extractive QA answered after a forced prefix (paper §3.3).

en:xx prompts wrap the target-language passage and question in the English template; xx:xx prompts use
the target language's own. Both end with the target language's "Based on the passage, the answer to the
question is", forced as the start of the reply, so the generated continuation is the answer.

`template: paper` renders the paper's own prompts instead (`prepare_xquad_data.ipynb`, read from the fetched
sources by `flows/protocol`): its per-language templates, which ask for the answer in quotation marks and
end with a forced prefix that opens a quote; en:xx uses its English template and English prefix around the
target-language passage; the whole text as its notebook formats and strips it, byte for byte.

The hook of `tasks/xquad.yaml`: its options, items and scoring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from flows.data import guanaco
from flows.evals import language_data
from flows.evals.items import EvalItem
from flows.evals.registry import file_sha256
from flows.evals.sampling import sample
from flows.evals.scoring import score_xquad
from flows.evals.spec import TaskOptions
from services.common.config.types import LocalPath
from services.common.errors import NotFound

NAME = "xquad"
HUB_ID = "google/xquad"


class Options(TaskOptions):
    modes: list[Literal["en:xx", "xx:xx"]] = Field(
        ["en:xx", "xx:xx"],
        min_length=1,
        description="en:xx = English instruction, target-language passage and question; xx:xx = all in the "
        "target language.",
    )
    data_dir: LocalPath | None = Field(None, description="Directory of xquad.<lang>.json; null = the hub copy.")
    template: Literal["polyglot", "paper"] = Field(
        "polyglot",
        description="polyglot: templates/xquad.yaml's prompts; paper: the paper's templates and forced prefixes "
        "(prepare_xquad_data.ipynb, from protocol.sources).",
    )


@dataclass(frozen=True)
class XquadQuestion:
    id: str
    context: str
    question: str
    answers: tuple[str, ...]
    raw_context: str = ""  # as the file has them: the paper's prompts strip only whitespace (no BOM removal)
    raw_question: str = ""


def data_file(data_dir: Path, language: str) -> Path:
    path = Path(data_dir) / f"xquad.{language}.json"
    if not path.is_file():
        raise NotFound(f"XQuAD file {path} does not exist", field="evaluation.tasks.xquad.data_dir")
    return path


def _clean(text: str) -> str:
    # Some XQuAD translations start a context with a byte-order mark.
    return text.replace("\ufeff", "").strip()


def read_squad_json(path: Path) -> list[XquadQuestion]:
    """Questions of a SQuAD v1.1 JSON file, in file order."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [
        XquadQuestion(
            qa["id"],
            _clean(paragraph["context"]),
            _clean(qa["question"]),
            tuple(_clean(a["text"]) for a in qa["answers"]),
            paragraph["context"],
            qa["question"],
        )
        for article in data["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]


def read_hub(language: str) -> list[XquadQuestion]:
    import datasets

    rows = datasets.load_dataset(HUB_ID, f"xquad.{language}", split="validation")
    return [
        XquadQuestion(
            r["id"],
            _clean(r["context"]),
            _clean(r["question"]),
            tuple(map(_clean, r["answers"]["text"])),
            r["context"],
            r["question"],
        )
        for r in rows
    ]


def load_questions(config: Options, language: str) -> list[XquadQuestion]:
    return read_squad_json(data_file(config.data_dir, language)) if config.data_dir else read_hub(language)


def build_prompt(question: XquadQuestion, language: str, mode: str, template: str = "polyglot") -> tuple[str, str]:
    """(Guanaco prompt, forced response prefix) for one question in one mode."""
    if template == "paper":
        from flows.protocol import render
        from flows.protocol.paper_texts import load_paper_texts

        return render.xquad_prompt(
            load_paper_texts().xquad, language, mode, question.raw_context or question.context,
            question.raw_question or question.question,
        )
    template = language_data.entry(NAME, "en" if mode == "en:xx" else language)["template"]
    prefix = language_data.entry(NAME, language)["prefix"]
    instruction = template.format(passage=question.context, question=question.question)
    # The generator appends the prefix to the prompt verbatim: the space after `### Assistant:` is ours.
    return guanaco.prompt(instruction), f" {prefix}"


def inputs(config: Options, language: str, translator_model: str = "") -> dict[str, str]:
    data = file_sha256(data_file(config.data_dir, language)) if config.data_dir else f"hub:{HUB_ID}"
    if config.template == "paper":
        from flows.protocol.sources import load_pins

        pins = load_pins()
        return {"data": data, "template": f"paper@{pins.commit}:{pins.sha256[pins.roles['xquad']]}"}
    return {
        "data": data,
        "template_en": json.dumps(language_data.entry(NAME, "en"), sort_keys=True, ensure_ascii=False),
        "template": json.dumps(language_data.entry(NAME, language), sort_keys=True, ensure_ascii=False),
    }


def build_items(config: Options, language: str, *, seed: int, translator: Any = None) -> list[EvalItem]:
    questions = {q.id: q for q in load_questions(config, language)}
    chosen = sample(list(questions), config.sample_size, seed, NAME)
    items = []
    for mode in config.modes:
        for qid in chosen:
            question = questions[qid]
            prompt, prefix = build_prompt(question, language, mode, config.template)
            items.append(
                EvalItem(
                    id=qid,
                    task=NAME,
                    language=language,
                    mode=mode,
                    prompt=prompt,
                    response_prefix=prefix,
                    question=question.question,
                    answers=list(question.answers),
                    source="human",
                )
            )
    return items


def score(item: EvalItem, output: str) -> dict[str, float]:
    result = score_xquad(output, item.answers, question=item.question, language=item.language)
    return {"em": result.exact_match, "f1": result.f1}
