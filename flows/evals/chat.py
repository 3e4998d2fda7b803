"""Open-ended chat prompts (paper §3.3), graded for helpfulness by the judge service.

Prompt sets, each the same questions in every language:
- `alpaca_eval`: a seeded sample (paper: 300) of AlpacaEval's 805 English instructions; zh ru fr es
  from OMGEval's human translations (same order and indices as English, see templates/chat.yaml);
- `oasst_prompts`: the human-translated OpenAssistant prompts (`test_<lang>.jsonl`, aligned by id).
With `alpaca_eval_prompts: paper`, `alpaca_eval` is the paper's own prompt files instead (all 805, its
GPT-3.5 translations, `data/alpaca_eval*/alpaca_eval_instructions_<lang>.json` of the fetched sources, see
`flows/protocol`), verbatim, aligned by line.
A language a set has no human translation for is machine-translated from English through the judge
service's Translate; the eval-set artifact that holds the result is the cache (its key names the model).

The hook of `tasks/chat.yaml`: options, items, and the per-reply metrics of a judged reply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from flows.data import guanaco
from flows.evals import language_data
from flows.evals.items import EvalItem
from flows.evals.registry import file_sha256
from flows.evals.sampling import draw
from flows.evals.spec import TaskOptions
from services.common.config.types import LocalPath
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound

NAME = "chat"
ALPACA_EVAL_HUB = ("tatsu-lab/alpaca_eval", "alpaca_eval.json")


class Options(TaskOptions):
    prompt_sets: list[Literal["alpaca_eval", "oasst_prompts"]] = Field(
        ["alpaca_eval"],
        min_length=1,
        description="alpaca_eval: AlpacaEval instructions and their translations; oasst_prompts: the "
        "human-translated OpenAssistant prompts. Missing languages are machine-translated via the judge.",
    )
    alpaca_eval: LocalPath | None = Field(
        None, description="AlpacaEval JSON (`instruction` field); null = the hub copy."
    )
    alpaca_eval_translations: LocalPath | None = Field(
        None, description="Directory of OMGEval_<Language>.txt translations (zh ru fr es)."
    )
    oasst_prompts: LocalPath | None = Field(None, description="Directory of test_<lang>.jsonl prompt files.")
    alpaca_eval_prompts: Literal["polyglot", "paper"] = Field(
        "polyglot",
        description="Where the alpaca_eval set's prompts come from: polyglot (AlpacaEval + OMGEval's translations "
        "+ machine translation) or paper (the paper's translated files, all 805 a language, from protocol.sources).",
    )
    sample_method: Literal["polyglot", "pandas"] = Field(
        "polyglot",
        description="How `sample_size` and `judged_sample` draw prompts: polyglot (seeded, the same ids in every "
        "language) or pandas (`DataFrame.sample(n, random_state=evaluation.sample_seed)` over the set's prompts in "
        "file order: the paper's draw).",
        json_schema_extra={"by_inputs": True},  # `inputs` names it when not the default: existing keys stay
    )
    judged_sample: int | None = Field(
        None,
        gt=0,
        description="Judge only this many of the generated replies per language (drawn by `sample_method`); every "
        "reply still gets its language checks. null = judge every reply. Paper: all 805 generated, 300 judged.",
        json_schema_extra={"by_inputs": True},  # not the items: the shard's key names it (flows/keys.py)
    )


@dataclass
class _SetPlan:
    """Where one prompt set's items in one language come from."""

    name: str
    ids: list[str]  # every id the set offers in all its languages, in order
    english: dict[str, str]  # id -> English prompt
    files: dict[str, Path] = field(default_factory=dict)  # what the items are read from (hashed for keys)
    human: dict[str, str] | None = None  # id -> human prompt in the target language; None = translate


def _alpaca_eval_english(config: Options) -> tuple[list[str], Path | None]:
    if config.alpaca_eval is not None:
        path = Path(config.alpaca_eval)
    else:  # the hub copy; needs the hub or the local HF cache
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(ALPACA_EVAL_HUB[0], ALPACA_EVAL_HUB[1], repo_type="dataset"))
    if not path.is_file():
        raise NotFound(f"AlpacaEval file {path} does not exist", field="evaluation.tasks.chat.alpaca_eval")
    records = json.loads(path.read_text(encoding="utf-8"))
    return [record["instruction"] for record in records], path


def provided_languages(config: Options, item_set: str) -> set[str] | None:
    """Languages whose `item_set` prompts this configuration has without a Translate call (the planner asks);
    None: the task's `planner.human_translations` say."""
    if item_set == "alpaca_eval" and config.alpaca_eval_prompts == "paper":
        from flows.protocol.sources import load_pins

        return set(load_pins().roles["alpaca_eval"])  # the paper's own translations, one file a language
    return None


def _plan_paper_alpaca_eval(language: str) -> _SetPlan:
    from flows.protocol import render
    from flows.protocol.paper_texts import load_paper_texts
    from flows.protocol.sources import active_sources, load_pins

    texts, pins = load_paper_texts(), load_pins()
    english = render.alpaca_eval_prompts(texts, "en")
    prompts = render.alpaca_eval_prompts(texts, language)
    if len(prompts) != len(english):
        raise InvalidArgument(
            f"the paper's {language} AlpacaEval file has {len(prompts)} prompts, its English one {len(english)}",
            field="evaluation.tasks.chat.alpaca_eval_prompts",
        )
    ids = [f"alpaca_eval/{i:03d}" for i in range(len(english))]
    files = {lang: active_sources() / pins.path_of("alpaca_eval", lang) for lang in sorted({"en", language})}
    english_by_id, human = dict(zip(ids, english, strict=True)), dict(zip(ids, prompts, strict=True))
    return _SetPlan("alpaca_eval", ids, english_by_id, files, human)


def _plan_alpaca_eval(config: Options, language: str) -> _SetPlan:
    if config.alpaca_eval_prompts == "paper":
        return _plan_paper_alpaca_eval(language)
    english, path = _alpaca_eval_english(config)
    data = language_data.table(NAME)["alpaca_eval"]
    missing = set(data["missing_in_translations"])
    indices = [i for i in range(len(english)) if i not in missing]
    ids = [f"alpaca_eval/{i:03d}" for i in indices]
    plan = _SetPlan("alpaca_eval", ids, {ids[j]: english[i] for j, i in enumerate(indices)}, {"en": path})
    if language == "en":
        plan.human = dict(plan.english)
    elif language in data["translations"] and config.alpaca_eval_translations is not None:
        file = Path(config.alpaca_eval_translations) / data["translations"][language]
        if not file.is_file():
            raise NotFound(
                f"AlpacaEval translation {file} does not exist", field="evaluation.tasks.chat.alpaca_eval_translations"
            )
        # One instruction per line; splitlines() would also split on U+2028 and friends inside a line.
        lines = file.read_text(encoding="utf-8").rstrip("\n").split("\n")
        if len(lines) != len(indices):
            raise InvalidArgument(
                f"{file} has {len(lines)} lines; expected {len(indices)} (AlpacaEval's {len(english)} "
                f"less the indices {sorted(missing)} it leaves out)",
                field="evaluation.tasks.chat.alpaca_eval_translations",
            )
        plan.human = dict(zip(ids, (line.strip() for line in lines), strict=True))
        plan.files[language] = file
    return plan


def _read_prompts(path: Path) -> dict[str, str]:
    prompts = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            prompts[str(record["id"])] = record["prompt"]
    return prompts


def _plan_oasst_prompts(config: Options, language: str) -> _SetPlan:
    if config.oasst_prompts is None:
        raise InvalidArgument("the oasst_prompts set needs its directory", field="evaluation.tasks.chat.oasst_prompts")
    directory = Path(config.oasst_prompts)
    english_file = directory / "test_en.jsonl"
    if not english_file.is_file():
        raise NotFound(f"{english_file} does not exist", field="evaluation.tasks.chat.oasst_prompts")
    english = _read_prompts(english_file)
    human_languages = language_data.table(NAME)["oasst_prompts"]["languages"]
    # Only ids every human translation has, so each language is asked the same questions.
    common = set(english)
    for lang in human_languages:
        file = directory / f"test_{lang}.jsonl"
        if file.is_file():
            common &= set(_read_prompts(file))
    ids = [i for i in english if i in common]
    plan = _SetPlan("oasst_prompts", ids, {i: english[i] for i in ids}, {"en": english_file})
    file = directory / f"test_{language}.jsonl"
    if file.is_file():
        prompts = _read_prompts(file)
        plan.human = {i: prompts[i] for i in ids}
        plan.files[language] = file
    return plan


_PLANNERS = {"alpaca_eval": _plan_alpaca_eval, "oasst_prompts": _plan_oasst_prompts}


def plans(config: Options, language: str) -> list[_SetPlan]:
    return [_PLANNERS[name](config, language) for name in config.prompt_sets]


def needs_translation(config: Options, language: str) -> bool:
    return any(plan.human is None for plan in plans(config, language))


def inputs(config: Options, language: str, translator_model: str = "") -> dict[str, str]:
    identity: dict[str, str] = {}
    for plan in plans(config, language):
        for lang, path in sorted(plan.files.items()):
            identity[f"{plan.name}:{lang}"] = file_sha256(path)
        if plan.human is None:
            identity[f"{plan.name}:translator"] = translator_model or "(none)"
    identity["chat.yaml"] = json.dumps(language_data.table(NAME), sort_keys=True, ensure_ascii=False)
    if config.sample_method != "polyglot":
        identity["sample_method"] = config.sample_method
    return identity


def build_items(config: Options, language: str, *, seed: int, translator: Any = None) -> list[EvalItem]:
    items = []
    for plan in plans(config, language):
        chosen = draw(plan.ids, config.sample_size, seed, f"{NAME}/{plan.name}", config.sample_method)
        if plan.human is not None:
            texts, source = [plan.human[i] for i in chosen], "human"
        elif translator is None:
            raise FailedPrecondition(
                f"chat prompts in {language!r} ({plan.name}) have no human translation here and need the "
                "judge service's Translate; start the judge or drop the language",
                field="evaluation.tasks.chat.languages",
            )
        else:
            texts, source = translator([plan.english[i] for i in chosen], "en", language), "mt"
        items.extend(
            EvalItem(
                id=item_id,
                task=NAME,
                language=language,
                prompt=guanaco.prompt(text),
                instruction=text.strip(),
                source=f"{plan.name}:{source}",
            )
            for item_id, text in zip(chosen, texts, strict=True)
        )
    return items


def judged_ids(config: Options, language: str, seed: int) -> set[str] | None:
    """Ids of the items the judge grades (`judged_sample`), drawn from each set's whole id list, so every shard
    agrees; None = every item."""
    if config.judged_sample is None:
        return None
    return {
        item_id
        for plan in plans(config, language)
        for item_id in draw(plan.ids, config.judged_sample, seed, f"{NAME}/{plan.name}/judged", config.sample_method)
    }


def judged_metrics(record: Any, prompt_id: Any, reply_id: Any, target: str, check: Any) -> dict[str, float]:
    """The paper's chat metrics for one reply (§3.3, §4): helpfulness (when the judge could grade it),
    lang_match and tgt_lang from lid, and the line-level pass rate (language confusion)."""
    from services.lid.metrics import agreement

    agree = agreement(prompt_id, reply_id, target)
    metrics = {
        "lang_match": float(agree.lang_match),
        "tgt_lang": float(bool(agree.tgt_lang)),
        "line_pass_rate": float(check.line_pass_rate),
    }
    if 1 <= record.score <= 6:  # UNPARSABLE / ERROR records carry 0: kept out of the mean, never guessed
        metrics["helpfulness"] = float(record.score)
    return metrics
