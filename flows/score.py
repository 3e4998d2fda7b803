"""`polyglot score FILE`: score outputs that were generated elsewhere with the study's metrics, then the
study's aggregate and report. No generation.

A file is JSON Lines or CSV, one output a record (docs/score-format.md). The paper's released outputs load as
they are: their fields are aliases of ours (`system` is the reply, `source` the instruction, `reference` the
gold answer), and the task, language, variant, seed and model come from the paper's file and directory
names when the records do not say them. Every record is validated before anything is scored; a bad one
refuses the whole file, naming each bad line and field, so what is scored is exactly what was read.

Chat: lid's agreement metrics (lang_match, tgt_lang) and line pass rate, through the lid service or
in-process; helpfulness only with a judge. XQuAD: exact match and F1 by the XQuAD hook; X-CSQA: accuracy of the
letter the X-CSQA hook extracts.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows import progress
from flows.evals import TASKS, EvalItem
from flows.evals.scoring import LETTERS
from flows.grading import grade_replies
from flows.results import ItemResult, Outcome, results_to_jsonl
from flows.samples import dumps_samples
from services.common import languages
from services.common.errors import InvalidArgument

TASK_NAMES = ("chat", "xquad", "xcsqa")  # tasks whose outputs are scored from text alone (XNLI is log-likelihood)
# Our field ← the names it may have in a record, ours first (the paper's, AlpacaEval's after it).
ALIASES: dict[str, tuple[str, ...]] = {
    "reply": ("reply", "system", "output"),
    "instruction": ("instruction", "source"),
    "answers": ("answers", "answer", "reference", "answerKey"),
    "choices": ("choices", "options"),
    "model": ("model", "generator"),
    "item_id": ("item_id", "id"),
}
# The paper's output file names: alpaca_eval_instructions_<lang>-…-s<seed>-… and xquad_dev_<instr>_<lang>-….
_PAPER_NAMES = (
    re.compile(r"alpaca_eval_instructions_(?P<language>[a-z]{2})-.*-s(?P<seed>\d+)-"),
    re.compile(r"xquad_dev_(?P<instruction>[a-z]{2})_(?P<language>[a-z]{2})-.*-s(?P<seed>\d+)-"),
)


@dataclass(frozen=True)
class Output:
    """One generated output, validated."""

    line: int
    task: str
    language: str
    variant: str
    base_model: str
    model: str
    seed: int
    item_id: str
    prompt: str
    reply: str
    instruction: str = ""
    question: str = ""
    answers: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()  # X-CSQA: the option texts, in letter order
    record: Mapping[str, Any] = field(default_factory=dict, compare=False)  # as read, for the samples


class BadRecords(InvalidArgument):
    """Records that cannot be scored: `problems` are `(line, field, message)`, every one of the file."""

    def __init__(self, source: str, problems: list[tuple[int, str, str]]):
        self.problems = problems
        lines = "\n".join(f"{source}:{line}: {name}: {message}" for line, name, message in problems)
        super().__init__(f"{len(problems)} record(s) refused:\n{lines}", field=problems[0][1])


def file_defaults(path: Path) -> dict[str, Any]:
    """What the paper's file and directory names say: task, language, variant, seed, model."""
    for pattern in _PAPER_NAMES:
        match = pattern.search(path.name)
        if match:
            found = match.groupdict()
            defaults = {"language": found["language"], "seed": int(found["seed"]), "model": path.parent.name}
            if "instruction" not in found:
                return defaults | {"task": "chat"}
            return defaults | {"task": "xquad", "variant": "en:xx" if found["instruction"] == "en" else "xx:xx"}
    return {"model": path.stem}


def raw_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, record) of a JSON Lines or CSV file; a line that is not a record is yielded as an error."""
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(handle)
            for row in reader:
                yield reader.line_num, row
            return
        for line, text in enumerate(handle, 1):
            if not text.strip():
                continue
            try:
                yield line, json.loads(text)
            except json.JSONDecodeError as exc:
                yield line, InvalidArgument(f"invalid JSON: {exc.msg}", field="(record)")


def _value(record: Mapping[str, Any], name: str) -> Any:
    return next((record[alias] for alias in ALIASES.get(name, (name,)) if record.get(alias) not in (None, "")), None)


def _text(value: Any, name: str, *, required: bool = True) -> str:
    if value is None:
        if required:
            raise InvalidArgument("is missing", field=name)
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"must be a string, got {type(value).__name__}", field=name)
    return value


def _reply(record: Mapping[str, Any]) -> str:
    """The reply under any of its names; an empty one is a reply too (unlike an empty optional field)."""
    present = [alias for alias in ALIASES["reply"] if record.get(alias) is not None]
    value = _value(record, "reply")
    return _text(value if value is not None else (record[present[0]] if present else None), "reply")


def _answers(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) and value.startswith("["):  # a CSV cell holding a JSON list
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InvalidArgument("is neither an answer nor a JSON list of answers", field="answers") from None
    answers = [value] if isinstance(value, str) else value
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a for a in answers):
        raise InvalidArgument("must be the gold answer or a non-empty list of them", field="answers")
    return tuple(answers)


def _multiple_choice(answer: Any, choices: Any) -> dict[str, Any]:
    """X-CSQA: the gold letter and the option texts (a list, or a CSV cell holding a JSON list)."""
    if isinstance(choices, str):
        try:
            choices = json.loads(choices)
        except json.JSONDecodeError:
            raise InvalidArgument("must be a JSON list of the option texts", field="choices") from None
    if not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS):
        raise InvalidArgument(f"must be a list of 2 to {len(LETTERS)} option texts, in letter order", field="choices")
    if all(isinstance(c, dict) for c in choices):  # X-CSQA's own [{"label": "A", "text": ...}, ...]
        try:
            choices = [c["text"] for c in sorted(choices, key=lambda c: c["label"])]
        except (KeyError, TypeError):
            raise InvalidArgument('each option needs a "label" and a "text"', field="choices") from None
    if not all(isinstance(c, str) and c for c in choices):
        raise InvalidArgument("every option must be a non-empty string", field="choices")
    letters = LETTERS[: len(choices)]
    answers = _answers(answer)
    if len(answers) != 1 or answers[0] not in letters:
        raise InvalidArgument(f"must be the gold letter, one of {', '.join(letters)}", field="answers")
    return {"answers": answers, "choices": tuple(choices)}


def to_output(line: int, record: Any, defaults: Mapping[str, Any]) -> Output:
    """One record as an Output, or InvalidArgument naming the field."""
    if isinstance(record, Exception):
        raise record
    if not isinstance(record, dict):
        raise InvalidArgument(f"must be a JSON object, got {type(record).__name__}", field="(record)")

    def get(name: str) -> Any:
        value = _value(record, name)
        return defaults.get(name) if value is None else value

    task = _text(get("task"), "task")
    if task not in TASK_NAMES:
        raise InvalidArgument(f"{task!r} is not a task scored from outputs: {', '.join(TASK_NAMES)}", field="task")
    language = languages.get(_text(get("language"), "language")).code  # raises naming `language`
    seed = get("seed")
    try:
        seed = int(seed if seed is not None else 0)
        if seed < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidArgument(f"must be a non-negative integer, got {seed!r}", field="seed") from None
    base_model = _text(get("base_model") or "external", "base_model")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", base_model):
        raise InvalidArgument(f"{base_model!r}: use lower-case letters, digits, '.', '_' and '-'", field="base_model")
    common = dict(
        line=line,
        task=task,
        language=language,
        base_model=base_model,
        model=_text(get("model"), "model"),
        seed=seed,
        item_id=str(get("item_id") or f"line-{line}"),
        prompt=_text(get("prompt"), "prompt", required=False),
        reply=_reply(record),
        record=record,
    )
    if task == "chat":
        instruction = _text(get("instruction"), "instruction", required=False)
        if not (instruction or common["prompt"]):
            raise InvalidArgument("chat needs the prompt or the instruction, for its language", field="prompt")
        return Output(**common, variant="", instruction=instruction)
    if task == "xcsqa":
        choices = get("choices")
        if choices is None and isinstance(record.get("question"), dict):  # the published X-CSQA record itself
            choices = record["question"].get("choices")
        return Output(**common, variant="", **_multiple_choice(get("answers"), choices))
    variant = _text(get("variant"), "variant")
    if variant not in TASKS.get(task).variant_names():
        raise InvalidArgument(f"must be one of {TASKS.get(task).variant_names()}, got {variant!r}", field="variant")
    question = _text(get("question"), "question", required=False)
    return Output(**common, variant=variant, question=question, answers=_answers(get("answers")))


def read_outputs(path: Path, defaults: Mapping[str, Any] | None = None) -> list[Output]:
    """Every record of the file, validated; BadRecords lists every bad line. `defaults` (the command line's)
    win over the file name's and lose to the record's own fields."""
    given = file_defaults(path) | {k: v for k, v in (defaults or {}).items() if v is not None}
    outputs, problems, seen = [], [], {}
    for line, record in raw_records(path):
        try:
            output = to_output(line, record, given)
        except InvalidArgument as exc:
            problems.append((line, exc.field or "(record)", exc.message))
            continue
        key = _key(output)
        if key in seen:
            problems.append((line, "item_id", f"{output.item_id!r} again (line {seen[key]}): give each output an id"))
            continue
        seen[key] = line
        outputs.append(output)
    if problems:
        raise BadRecords(str(path), problems)
    if not outputs:
        raise InvalidArgument(f"{path} holds no records", field="FILE")
    return outputs


# -- scoring ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    result: ItemResult
    sample: dict[str, Any]


def _result(output: Output, study: str, metrics: Mapping[str, float], outcome: Outcome) -> ItemResult:
    return ItemResult(
        study=study,
        base_model=output.base_model,
        mix=output.model,
        task=output.task,
        variant=output.variant,
        language=output.language,
        seed=output.seed,
        item_id=output.item_id,
        metrics=metrics,
        outcome=outcome,
    )


def score_against_gold(outputs: Sequence[Output], study: str) -> list[Scored]:
    """XQuAD and X-CSQA: each reply scored against its gold answer by the task's own hook."""
    scored = []
    for o in outputs:
        item = EvalItem(id=o.item_id, task=o.task, language=o.language, mode=o.variant, prompt=o.prompt,
                        question=o.question, answers=list(o.answers), choices=list(o.choices))  # fmt: skip
        metrics = TASKS.get(o.task).score(item, o.reply)
        sample = {"reply": o.reply, "answers": list(o.answers)} | ({"choices": list(o.choices)} if o.choices else {})
        scored.append(Scored(_result(o, study, metrics, Outcome.OK), sample))
    return scored


def score_chat(outputs: Sequence[Output], study: str, lid: Any, judge: Any = None, judge_options=None) -> list[Scored]:
    """lid's agreement and line checks for every reply; with `judge` (a JudgeClient), its grade too, the way a
    study's chat shard is graded (`flows.grading`)."""
    prompts = [o.instruction or o.prompt for o in outputs]
    graded = grade_replies(
        lid,
        judge,
        prompts=prompts,
        replies=[o.reply for o in outputs],
        targets=[o.language for o in outputs],
        grade_ids=[f"{o.model}:{o.item_id}:{o.seed}" for o in outputs],
        judged_metrics=TASKS.get("chat").hook_module.judged_metrics,
        judge_options=judge_options or {},
        run_id=study,
        progress=progress.report_scoring,
    )
    return [
        Scored(_result(o, study, g.metrics, g.outcome), {"reply": o.reply} | g.sample)
        for o, g in zip(outputs, graded, strict=True)
    ]


def score_outputs(
    outputs: Sequence[Output], study: str, lid: Any = None, judge: Any = None, judge_options=None
) -> list[Scored]:
    """Every output scored, in file order; chat needs `lid` (a LidClient or the in-process identifier)."""
    chat = [o for o in outputs if o.task == "chat"]
    scored = score_against_gold([o for o in outputs if o.task != "chat"], study)
    if chat:
        scored += score_chat(chat, study, lid, judge, judge_options)
    by_key = {s.result.key: s for s in scored}  # read_outputs refused duplicate keys
    return [by_key[_key(o)] for o in outputs]


def _key(o: Output) -> tuple:
    """An output's `ItemResult.key`."""
    return (o.base_model, o.model, o.task, o.variant, o.language, o.seed, o.item_id)


# -- aggregate and report -----------------------------------------------------------------------------------


def study_config(name: str, outputs: Sequence[Output]):
    """A study config that describes the scored outputs (their base models, tasks, languages, seeds), for
    the report: the report reads its sections, labels and statistics settings from one."""
    from flows.config import StudyConfig

    tasks: dict[str, dict[str, Any]] = {}
    for o in outputs:
        options = tasks.setdefault(o.task, {"languages": []})
        if o.language not in options["languages"]:
            options["languages"].append(o.language)
        if o.variant and o.variant not in options.setdefault("modes", []):
            options["modes"].append(o.variant)
    data = {
        "name": name,
        "description": "Outputs generated elsewhere, scored by `polyglot score`.",
        "base_models": [{"name": b, "model": b} for b in dict.fromkeys(o.base_model for o in outputs)],
        "evaluation": {"tasks": tasks},
        "seeds": sorted({o.seed for o in outputs}),
    }
    return StudyConfig.model_validate(data, context={"check_paths": False})


def write_report(name: str, outputs: Sequence[Output], scored: Sequence[Scored], out_dir: Path) -> dict[str, Path]:
    """results.jsonl and samples.jsonl (every output's record), the aggregate, figures and the report."""
    from flows.aggregate import aggregate
    from flows.figures import render_figures
    from flows.report import render_report

    cfg = study_config(name, outputs)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.jsonl").write_bytes(results_to_jsonl(s.result for s in scored))
    (out_dir / "samples.jsonl").write_bytes(dumps_samples(s.result.to_json() | s.sample for s in scored))
    aggregated = aggregate([s.result for s in scored], cfg.report)
    (out_dir / "aggregate.json").write_text(json.dumps(aggregated.to_json(), indent=1, sort_keys=True))
    figures = render_figures(cfg, aggregated.rows, out_dir / "figures")
    written = render_report(cfg, aggregated.rows, aggregated.tests, figures, {}, {}, out_dir,
                            outcomes=aggregated.outcomes)  # fmt: skip
    return {"results": out_dir / "results.jsonl", **written}
