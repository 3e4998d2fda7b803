"""The paper's prompts, rendered byte for byte as its scripts and notebooks render them.

- Judge and translation: the scripts' system message and `user.format(...)` (no strip of the inputs or
  of the result: the scripts apply none). The judge service gets them as a chat template file
  (`write_judge_templates`), whose `{{placeholders}}` it fills in one pass, as `str.format` does.
- XQuAD / X-CSQA: `template.format(...)`, then `.strip()` where the notebook strips (it does: the leading
  newline of the triple-quoted template and the trailing newline and spaces after the forced prefix go);
  inputs the notebook strips first (XQuAD's context and question) are stripped. en:xx uses the notebook's
  cross-lingual template (English instructions and prefix) around the target-language passage.
  The rendered text is the whole model input (the paper runs these with a blank prompt format); it is
  split after its last `### Assistant:` into the generator's prompt and forced response prefix, whose
  concatenation is the rendered text exactly.

    from flows.protocol.paper_texts import load_paper_texts
    from flows.protocol import render
    prompt, prefix = render.xquad_prompt(load_paper_texts().xquad, "de", "en:xx", passage, question)
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flows.protocol.paper_texts import ChatTemplate, PaperTexts, PromptTable
from services.common.errors import InvalidArgument
from services.judge.prompts import PLACEHOLDER

ASSISTANT_MARKER = "### Assistant"
COLONS = (":", "\uff1a")  # the Chinese templates write a full-width colon after the marker
GRADE_TEMPLATE = "paper"  # `judge.template: paper` names this file in the judge's template_dir
TRANSLATE_TEMPLATE = "translate"  # overrides the built-in translate template in that directory
# The judge's placeholder for each field the paper's scripts format.
JUDGE_FIELDS = {"prompt": "prompt", "response": "response"}
TRANSLATION_FIELDS = {"prompt": "text", "tgt_lang": "target_language"}


# -- judge and translation ---------------------------------------------------------------------------------------


def judge_messages(texts: PaperTexts, prompt: str, response: str) -> list[dict[str, str]]:
    return texts.judge.messages(prompt=prompt, response=response)


def translation_messages(texts: PaperTexts, text: str, target_language: str) -> list[dict[str, str]]:
    """`target_language` is a language's English name, as the paper's script is given (`--tgt_lang English`)."""
    return texts.translation.messages(prompt=text, tgt_lang=target_language)


def to_placeholders(template: str, names: Mapping[str, str], what: str) -> str:
    """A `str.format` template as a judge template: each `{field}` becomes `{{name}}`, each `{{` a `{`."""
    out = []
    for literal, field, spec, conversion in string.Formatter().parse(template):
        if PLACEHOLDER.search(literal):
            raise InvalidArgument(f"{what} contains text the judge would read as a placeholder", field="judge.template")
        out.append(literal)
        if field is not None:
            if spec or conversion or field not in names:
                raise InvalidArgument(
                    f"{what} has a format field {field!r} the judge cannot fill", field="judge.template"
                )
            out.append("{{" + names[field] + "}}")
    return "".join(out)


def chat_template_json(template: ChatTemplate, names: Mapping[str, str], what: str, **flags: Any) -> str:
    return json.dumps(
        {"system": template.system, "user": to_placeholders(template.user, names, what), **flags},
        ensure_ascii=False,
        indent=2,
    )


def write_judge_templates(
    texts: PaperTexts, directory: Path, *, repair: bool = False, translation: bool = True
) -> Path:
    """The judge's template directory for the `paper` profile: `paper.json` (grading: the paper's messages,
    strict JSON parsing as its script's `json.loads`, no repair request unless `repair`) and, with
    `translation`, `translate.json` (the paper's translation messages, replacing the built-in one)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    grade = chat_template_json(texts.judge, JUDGE_FIELDS, "the paper's judge message", repair=repair, parsing="strict")
    (directory / f"{GRADE_TEMPLATE}.json").write_text(grade, encoding="utf-8")
    translate_file = directory / f"{TRANSLATE_TEMPLATE}.json"
    if translation:
        translate_file.write_text(
            chat_template_json(texts.translation, TRANSLATION_FIELDS, "the paper's translation message"),
            encoding="utf-8",
        )
    else:
        translate_file.unlink(missing_ok=True)
    return directory


def judge_env(cfg: Any, state_dir: Path) -> dict[str, str]:
    """The judge service's settings from the config's judge section: seed, temperature, JSON mode, and, when
    the config uses the paper's judge or translation messages, the template directory written for them
    (under `state_dir`) from the verified sources."""
    judge = cfg.judge
    env = {
        "POLYGLOT_JUDGE_SEED": str(judge.seed),
        "POLYGLOT_JUDGE_TEMPERATURE": str(judge.temperature),
        "POLYGLOT_JUDGE_JSON_MODE": str(judge.json_mode).lower(),
    }
    if judge.template == GRADE_TEMPLATE or judge.translation_template == "paper":
        from flows.protocol.paper_texts import load_paper_texts
        from flows.protocol.sources import sources_dir

        texts = load_paper_texts(sources_dir(cfg))
        directory = write_judge_templates(
            texts,
            Path(state_dir) / "judge-templates",
            repair=judge.repair,
            translation=judge.translation_template == "paper",
        )
        env["POLYGLOT_JUDGE_TEMPLATE_DIR"] = str(directory.resolve())
    return env


# -- XQuAD and X-CSQA ------------------------------------------------------------------------------------------------


def split_prompt(text: str) -> tuple[str, str]:
    """(prompt up to and including the last `### Assistant:`, the forced prefix after it)."""
    at = text.rfind(ASSISTANT_MARKER)
    if at < 0:
        return text, ""
    end = at + len(ASSISTANT_MARKER)
    if text[end : end + 1] in COLONS:
        end += 1
    return text[:end], text[end:]


def _template(table: PromptTable, task: str, language: str, cross_lingual: bool) -> str:
    if cross_lingual:
        if table.cross_lingual is None:
            raise InvalidArgument(
                f"the paper's {task} notebook writes no en:xx files", field=f"evaluation.tasks.{task}.modes"
            )
        return table.cross_lingual
    if language not in table.templates:
        raise InvalidArgument(
            f"the paper has no {task} template in {language!r} (it has {', '.join(table.languages)})",
            field=f"evaluation.tasks.{task}.languages",
        )
    return table.templates[language]


def _format(table: PromptTable, template: str, values: dict[str, str]) -> str:
    values = {name: value.strip() if name in table.stripped_inputs else value for name, value in values.items()}
    text = template.format(**values)
    return text.strip() if table.strip_output else text


def xquad_instruction(table: PromptTable, language: str, mode: str, context: str, question: str) -> str:
    """The paper's XQuAD model input: en:xx = its English template around the target-language passage."""
    template = _template(table, "xquad", language, mode == "en:xx")
    return _format(table, template, {"context": context, "question": question})


def xquad_prompt(table: PromptTable, language: str, mode: str, context: str, question: str) -> tuple[str, str]:
    return split_prompt(xquad_instruction(table, language, mode, context, question))


def xcsqa_instruction(
    table: PromptTable, language: str, question: str, options: list[str] | tuple[str, ...], mode: str = "xx:xx"
) -> str:
    """The paper's X-CSQA model input: options `A: text` .. `E: text` in file order, forced prefix `"`."""
    template = _template(table, "xcsqa", language, mode == "en:xx")
    fields = [field for _, field, _, _ in string.Formatter().parse(template) if field]
    answers = sorted(field for field in fields if field.startswith("answer_"))
    if len(answers) != len(options):
        raise InvalidArgument(
            f"the paper's X-CSQA template has {len(answers)} options, the question {len(options)}",
            field="evaluation.tasks.xcsqa",
        )
    values = {"question": question, **dict(zip(answers, options, strict=True))}
    return _format(table, template, values)


def xcsqa_prompt(
    table: PromptTable, language: str, question: str, options: list[str] | tuple[str, ...], mode: str = "xx:xx"
) -> tuple[str, str]:
    return split_prompt(xcsqa_instruction(table, language, question, options, mode))


# -- chat prompts and Mono ids ---------------------------------------------------------------------------------------


def alpaca_eval_prompts(texts: PaperTexts, language: str) -> tuple[str, ...]:
    """The paper's AlpacaEval prompts in `language` (its GPT-3.5 translations; English: the originals)."""
    if language not in texts.alpaca_eval:
        raise InvalidArgument(
            f"the paper has no AlpacaEval prompts in {language!r} (it has {', '.join(texts.alpaca_eval)})",
            field="evaluation.tasks.chat.languages",
        )
    return texts.alpaca_eval[language]
