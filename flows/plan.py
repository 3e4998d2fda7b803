"""`polyglot plan CONFIG`: the study's grid, and what it will cost, before anything runs.

The grid follows the study's structure (§3 of the paper):
- one LoRA training job per base model × mix;
- one evaluation shard per trained model × task (× variant) × language × seed; generate tasks (chat,
  XQuAD, X-CSQA) generate one reply per item, log-likelihood tasks (XNLI) score each of an item's
  choices (its 3 labels) and run one seed;
- one judge call per reply of a judge-graded task (chat: every item × seed × model);
- translation requests where a chat language has no human translation of the prompts, and for the
  machine-translated (`-mt`) mixes' non-English rows (§5.1).

Estimates are products of these counts with per-unit figures. The figures are assumptions, not
measurements: they live in `Assumptions` with their reasons, are printed with every plan, and can be
overridden (`plan_study(cfg, Assumptions(train_seconds_per_step=4.5))`). The per-task figures default
to each task's `planner` section (flows/evals/tasks/*.yaml). GPU time scales linearly with the model's
parameter count from the 7B reference figures.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from flows.config import BaseModelConfig, StudyConfig
from flows.evals import TASKS

__all__ = [
    "Assumptions",
    "EvaluationUnit",
    "Plan",
    "TrainingJob",
    "TranslationNeed",
    "estimate_params_b",
    "plan_study",
    "render_plan",
]



def _per_task(figure: str, method: str | None = None) -> dict[str, int]:
    """One planner figure of every registered task (of one method), from the tasks' YAML."""
    specs = (TASKS.get(name) for name in TASKS.names())
    return {s.name: getattr(s.planner, figure) for s in specs if method in (None, s.method)}


def _judged(units: int, items: int, judged_sample: int | None) -> int:
    """Judge calls of `units` generations when only `judged_sample` of each language's `items` are judged."""
    if judged_sample is None or items == 0 or judged_sample >= items:
        return units
    return units // items * judged_sample


def _per_item_set(figure: str) -> dict[str, Any]:
    """`items_available` / `human_translations` keyed `task` or `task:item_set` (chat:alpaca_eval)."""
    out: dict[str, Any] = {}
    for name in TASKS.names():
        spec = TASKS.get(name)
        value = getattr(spec.planner, figure)
        if isinstance(value, dict):
            out.update({spec.item_set_key(item_set): v for item_set, v in value.items()})
        elif value:
            out[name] = value
    return out


class Assumptions(BaseModel):
    """Per-unit figures behind the estimates. Every one is a stated guess; override what you measured."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu: str = Field("NVIDIA A100 80GB", description="The GPU the time figures refer to.")
    reference_params_b: float = Field(7.0, gt=0, description="Model size (billions) the time figures are for.")
    train_seconds_per_step: float = Field(
        6.0,
        gt=0,
        description="LoRA optimizer step of a 7B model on 64 sequences (~400 tokens each, bf16) on one GPU: "
        "~4·7e9·25k FLOPs at ~40% of A100 peak.",
    )
    train_reference_batch: int = Field(64, gt=0, description="Sequences per step the step time refers to.")
    generation_tokens_per_second: float = Field(
        1500.0, gt=0, description="New tokens/s of batched decoding (vLLM) for a 7B model on one GPU."
    )
    prefill_tokens_per_second: float = Field(
        10000.0, gt=0, description="Prompt tokens/s (prefill and log-likelihood scoring) for a 7B model."
    )
    prompt_tokens: dict[str, int] = Field(
        default_factory=lambda: _per_task("prompt_tokens"),
        description="Mean prompt tokens per item (XQuAD carries a passage).",
    )
    output_tokens: dict[str, int] = Field(
        default_factory=lambda: _per_task("output_tokens", "generate"),
        description="Mean generated tokens per item, capped by the task's max_tokens.",
    )
    continuation_tokens: dict[str, int] = Field(
        default_factory=lambda: _per_task("continuation_tokens", "loglikelihood"),
        description="Tokens of one scored continuation (log-likelihood tasks).",
    )
    judge_input_tokens: int = Field(900, gt=0, description="Judge prompt: template + instruction + reply.")
    judge_output_tokens: int = Field(60, gt=0, description="Judge answer: a short rationale and the grade.")
    usd_per_1k_input_tokens: float = Field(
        0.0005, ge=0, description="API price of input tokens (gpt-3.5-turbo-0125: $0.50 / 1M)."
    )
    usd_per_1k_output_tokens: float = Field(
        0.0015, ge=0, description="API price of output tokens (gpt-3.5-turbo-0125: $1.50 / 1M)."
    )
    prompt_translation_tokens: int = Field(150, gt=0, description="Tokens in (and out) per translated prompt.")
    conversation_translation_tokens: int = Field(
        600, gt=0, description="Tokens in (and out) per translated training conversation (MT mixes)."
    )
    items_available: dict[str, int] = Field(
        default_factory=lambda: _per_item_set("items_available"),
        description="Items per language in each evaluation set (what sample_size: null evaluates).",
    )
    human_translations: dict[str, list[str]] = Field(
        default_factory=lambda: _per_item_set("human_translations"),
        description="Languages each prompt set has without machine translation (chat: AlpacaEval + OMGEval; "
        "the human-translated OASST prompts).",
    )
    params_b: dict[str, float] = Field(
        {}, description="Parameters (billions) per base model name, where the model id does not say it."
    )


# --- the grid ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingJob:
    base_model: str
    mix: str
    steps: int
    sequences: int
    params_b: float
    gpu_hours: float


@dataclass(frozen=True)
class EvaluationUnit:
    """One task (and XQuAD mode) of one base model, over its languages, seeds and trained mixes."""

    base_model: str
    task: str
    variant: str
    languages: list[str]
    items_per_language: int
    seeds: int
    models: int  # trained mixes of this base model (`polyglot eval`: its evaluate_models entries)
    shards: int  # models × languages × seeds
    generations: int
    scored_continuations: int
    judge_calls: int
    gpu_hours: float


@dataclass(frozen=True)
class TranslationNeed:
    purpose: str  # "chat prompts (alpaca_eval)" or "mix multi-3-mt"
    language: str
    requests: int
    tokens: int  # per request, each way


@dataclass
class Plan:
    study: str
    pipeline_check: bool
    assumptions: Assumptions
    base_models: list[str]
    mixes: list[str]
    seeds: list[int]
    judge: str
    judge_is_paid_api: bool
    concurrency: dict[str, int] = field(default_factory=dict)  # the config's `concurrency`: tasks and calls at once
    evaluate_only: bool = False  # the grid of `polyglot eval` (evaluate_models, no training), not of `study run`
    training_jobs: list[TrainingJob] = field(default_factory=list)
    evaluations: list[EvaluationUnit] = field(default_factory=list)
    translations: list[TranslationNeed] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        return {
            "training_jobs": len(self.training_jobs),
            "models_evaluated": sum(e.models for e in self.evaluations if (e.task, e.variant) == self._first_unit)
            if self.evaluations
            else 0,
            "evaluation_shards": sum(e.shards for e in self.evaluations),
            "generations": sum(e.generations for e in self.evaluations),
            "scored_continuations": sum(e.scored_continuations for e in self.evaluations),
            "judge_calls": sum(e.judge_calls for e in self.evaluations),
            "translation_requests": sum(t.requests for t in self.translations),
        }

    @property
    def _first_unit(self) -> tuple[str, str]:
        return self.evaluations[0].task, self.evaluations[0].variant  # each model has every task: count one

    @property
    def gpu_hours(self) -> dict[str, float]:
        training = sum(j.gpu_hours for j in self.training_jobs)
        evaluation = sum(e.gpu_hours for e in self.evaluations)
        return {"training": training, "evaluation": evaluation, "total": training + evaluation}

    @property
    def api_cost_usd(self) -> dict[str, float]:
        if not self.judge_is_paid_api:
            return {"judge": 0.0, "translation": 0.0, "total": 0.0}
        a = self.assumptions
        judge_calls = self.totals["judge_calls"]
        judge = (
            judge_calls
            * (a.judge_input_tokens * a.usd_per_1k_input_tokens + a.judge_output_tokens * a.usd_per_1k_output_tokens)
            / 1000
        )
        per_token_both_ways = (a.usd_per_1k_input_tokens + a.usd_per_1k_output_tokens) / 1000
        translation = sum(t.requests * t.tokens for t in self.translations) * per_token_both_ways
        return {"judge": judge, "translation": translation, "total": judge + translation}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["assumptions"] = self.assumptions.model_dump()
        data.update(totals=self.totals, gpu_hours=self.gpu_hours, api_cost_usd=self.api_cost_usd)
        return data


_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*[bB](?![A-Za-z])")


def estimate_params_b(model: BaseModelConfig, assumptions: Assumptions) -> tuple[float, str]:
    """Parameters in billions and where the number came from (an override, the id, the config, a guess)."""
    if model.name in assumptions.params_b:
        return assumptions.params_b[model.name], "assumptions.params_b"
    if model.tiny_random is not None:
        c = model.tiny_random.llama_config
        hidden, inter = c.get("hidden_size", 4096), c.get("intermediate_size", 11008)
        layers, vocab = c.get("num_hidden_layers", 32), c.get("vocab_size", 32000)
        # Attention (4 h²) and MLP (3 h·i) per layer, input and output embeddings.
        return (layers * (4 * hidden * hidden + 3 * hidden * inter) + 2 * vocab * hidden) / 1e9, "llama_config"
    match = _SIZE.search(model.model or "")
    if match:
        return float(match.group(1)), "model id"
    return assumptions.reference_params_b, "guess (set assumptions.params_b)"


def plan_study(cfg: StudyConfig, assumptions: Assumptions | None = None, *, evaluate_only: bool = False) -> Plan:
    """Count the study's grid and estimate its GPU time and API cost; `evaluate_only`: `polyglot eval`'s grid
    instead (the config's `evaluate_models`, no mixes, no training)."""
    a = assumptions or Assumptions()
    mixes = [] if evaluate_only else list(cfg.data.mixes.build)
    judge_is_paid_api = cfg.judge.provider == "openai"
    plan = Plan(
        study=cfg.name,
        pipeline_check=cfg.is_pipeline_check,
        assumptions=a,
        base_models=[m.name for m in cfg.base_models],
        mixes=mixes,
        seeds=list(cfg.seeds),
        judge=f"{cfg.judge.provider}/{cfg.judge.model}",
        judge_is_paid_api=judge_is_paid_api,
        concurrency=cfg.concurrency.model_dump(),
        evaluate_only=evaluate_only,
    )
    tasks = cfg.evaluation.tasks
    for model in cfg.base_models:
        if evaluate_only:
            mixes = [m.name for m in cfg.evaluate_models if m.base_model == model.name]
            if not mixes:
                continue
        params_b, source = estimate_params_b(model, a)
        scale = params_b / a.reference_params_b
        plan.notes.append(f"{model.name}: {params_b:.3g}B parameters ({source}); GPU time × {scale:.3g} of 7B")
        steps, batch = cfg.training.max_steps, cfg.training.effective_batch_size
        step_seconds = a.train_seconds_per_step * scale * batch / a.train_reference_batch
        for mix in [] if evaluate_only else mixes:
            plan.training_jobs.append(TrainingJob(model.name, mix, steps, steps * batch, params_b,
                                                  steps * step_seconds / 3600))  # fmt: skip
        for name, task in tasks.items():
            spec = TASKS.get(name)
            items = sum(spec.items_per_set(task, a.items_available).values())
            task_seeds = len(spec.run_seeds(cfg.seeds))
            for variant in spec.variants_for(task):
                units = len(mixes) * len(task.languages) * items * task_seeds
                prompt_seconds = a.prompt_tokens.get(name, 0) / a.prefill_tokens_per_second
                if spec.method == "loglikelihood":
                    scored, generations = units * spec.planner.requests_per_item, 0
                    tokens = a.prompt_tokens.get(name, 0) + a.continuation_tokens.get(name, 0)
                    seconds = scored * tokens / a.prefill_tokens_per_second
                else:
                    scored, generations = 0, units
                    new_tokens = min(a.output_tokens.get(name, 0), task.sampling.max_tokens)
                    seconds = units * (prompt_seconds + new_tokens / a.generation_tokens_per_second)
                plan.evaluations.append(
                    EvaluationUnit(
                        base_model=model.name,
                        task=name,
                        variant=variant,
                        languages=list(task.languages),
                        items_per_language=items,
                        seeds=task_seeds,
                        models=len(mixes),
                        shards=len(mixes) * len(task.languages) * task_seeds,
                        generations=generations,
                        scored_continuations=scored,
                        judge_calls=_judged(units, items, getattr(task, "judged_sample", None))
                        if spec.graded_by == "judge"
                        else 0,
                        gpu_hours=seconds * scale / 3600,
                    )
                )
    plan.evaluations.sort(key=lambda e: (TASKS.order_of(e.task), e.base_model, e.variant))
    if evaluate_only:
        plan.mixes = [m.name for m in cfg.evaluate_models]
    elif cfg.evaluate_models:
        plan.notes.append(
            f"{len(cfg.evaluate_models)} model(s) in evaluate_models are evaluated by `polyglot eval`, not counted "
            "here: `polyglot plan --eval` counts them"
        )
    _translations(cfg, a, plan)
    if cfg.is_pipeline_check:
        plan.notes.append("pipeline check: a tiny random model on CPU; GPU-hours here are not meaningful")
    if not judge_is_paid_api:
        plan.notes.append(f"judge provider {cfg.judge.provider!r} runs locally: no API cost")
    for name in tasks:
        if TASKS.get(name).method == "loglikelihood":
            label = TASKS.get(name).label
            plan.notes.append(f"{label} is scored (no sampling): one run per model and language stands for every seed")
    return plan


def _translations(cfg: StudyConfig, a: Assumptions, plan: Plan) -> None:
    """Prompts with no human translation (once per study, shared by all models and seeds); MT mix rows."""
    for name, task in cfg.evaluation.tasks.items():
        spec = TASKS.get(name)
        if not spec.planner.human_translations:  # the task has no machine-translated items
            continue
        provided = getattr(spec.hook_module, "provided_languages", None)  # a hook may know better than its YAML
        for item_set, items in spec.items_per_set(task, a.items_available).items():
            have = provided(task, item_set) if provided else None
            if have is None:
                have = set(a.human_translations.get(spec.item_set_key(item_set), []))
            for language in task.languages:
                if language not in have:
                    plan.translations.append(TranslationNeed(f"{name} prompts ({item_set})", language, items,
                                                             a.prompt_translation_tokens))  # fmt: skip
    order = cfg.data.mixes.order
    for spec in cfg.data.mixes.specs():
        if spec.machine_translated:
            for language in spec.non_english(order):
                plan.translations.append(TranslationNeed(f"mix {spec.name}", language, cfg.data.mixes.k,
                                                         a.conversation_translation_tokens))  # fmt: skip
    if any(spec.machine_translated for spec in cfg.data.mixes.specs()):
        plan.notes.append("MT mixes counted one by one; nested mixes that reuse translations need fewer requests")


# --- printing ------------------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or float(value).is_integer() else f"{value:,.2f}"


def _hours(value: float) -> str:
    return f"{value:,.1f}" if value >= 1 else f"{value:.3f}"


def _concurrency(concurrency: dict[str, int]) -> str:
    calls = ", ".join(f"{name} {n}" for name, n in concurrency.items() if name != "task_runner_workers")
    return f"concurrency: {concurrency['task_runner_workers']} tasks at once; calls in flight: {calls}"


def render_plan(plan: Plan) -> Group:
    """A rich renderable: the grid, the totals, the estimates and the assumptions behind them."""
    title = f"{'Evaluation' if plan.evaluate_only else 'Study'} plan: {plan.study}" + (
        "  [bold red](pipeline check)[/]" if plan.pipeline_check else ""
    )
    models = "models (evaluate_models)" if plan.evaluate_only else "mixes"
    header = Panel(
        Text.from_markup(
            f"base models: {', '.join(plan.base_models)}\n{models}: {', '.join(plan.mixes)}\n"
            f"seeds: {', '.join(map(str, plan.seeds))}    judge: {plan.judge}\n{_concurrency(plan.concurrency)}"
        ),
        title=title,
        title_align="left",
    )

    training = Table(title="Training jobs", title_justify="left")
    for column in ("base model", "mix", "steps", "sequences", f"GPU-h ({plan.assumptions.gpu})"):
        training.add_column(column, justify="left" if column in ("base model", "mix") else "right")
    for job in plan.training_jobs:
        training.add_row(job.base_model, job.mix, _n(job.steps), _n(job.sequences), _hours(job.gpu_hours))

    unit = models.split()[0]
    evaluation = Table(title=f"Evaluation (per base model: all its {unit})", title_justify="left")
    columns = ("base model", "task", "langs", "items/lang", "seeds", unit, "shards", "generations", "scored",
               "judge calls", "GPU-h")  # fmt: skip
    for column in columns:
        evaluation.add_column(column, justify="left" if column in ("base model", "task") else "right")
    for e in plan.evaluations:
        task = f"{e.task} {e.variant}".strip()
        evaluation.add_row(e.base_model, task, str(len(e.languages)), _n(e.items_per_language), str(e.seeds),
                           str(e.models), _n(e.shards), _n(e.generations), _n(e.scored_continuations),
                           _n(e.judge_calls), _hours(e.gpu_hours))  # fmt: skip

    totals = Table(title="Totals and estimates", title_justify="left", show_header=False)
    totals.add_column("what")
    totals.add_column("value", justify="right")
    for key, value in plan.totals.items():
        totals.add_row(key.replace("_", " "), _n(value))
    for key, value in plan.gpu_hours.items():
        totals.add_row(f"GPU-hours {key}", _hours(value))
    for key, value in plan.api_cost_usd.items():
        totals.add_row(f"API cost {key} (USD)", f"{value:,.2f}")

    parts: list[Any] = [header, training, evaluation]
    if plan.translations:
        translations = Table(title="Translation requests (judge service)", title_justify="left")
        for column in ("purpose", "language", "requests"):
            translations.add_column(column, justify="right" if column == "requests" else "left")
        for t in plan.translations:
            translations.add_row(t.purpose, t.language, _n(t.requests))
        parts.append(translations)
    parts.append(totals)

    assumptions = Table(title="Assumptions (override with plan_study(cfg, Assumptions(...)))", title_justify="left")
    assumptions.add_column("assumption")
    assumptions.add_column("value")
    assumptions.add_column("why", style="dim")
    for name, info in Assumptions.model_fields.items():
        value = getattr(plan.assumptions, name)
        shown = ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, Mapping) else str(value)
        assumptions.add_row(name, shown or "-", info.description or "")
    parts.append(assumptions)
    if plan.notes:
        parts.append(Text("\n".join(f"• {note}" for note in plan.notes), style="yellow"))
    return Group(*parts)
