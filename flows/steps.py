"""The study's steps as plain functions over the typed clients and the artifact store (no Prefect here).

`flows.study` wraps each in a Prefect task. Every step's output has a key derived from a hash of what
determines it (`flows.keys`, docs/artifact-keys.md); a step first looks for its key and returns what is
there, so a killed study resumes by computing only what is missing, and a finished one reruns without a
single training, generation or judge call.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from flows import keys, progress
from flows.clients import Clients
from flows.config import StudyConfig
from flows.config.schema import ConcurrencyConfig
from flows.data.build import Built, read_eval_set
from flows.evals import TASKS, EvalItem
from flows.grading import Graded, check_lines, grade_replies, line_sample, plain
from flows.results import ItemResult, Outcome, results_from_jsonl, results_to_jsonl
from flows.samples import dumps_samples
from services.common.catalog import SERVICES
from services.common.errors import TRANSIENT, TRANSIENT_CODES, FailedPrecondition, ItemError, Unavailable, error_for
from services.common.store import ArtifactStore
from services.generator.client import GeneratorClient
from services.generator.records import Completion
from services.trainer.client import TrainerClient
from services.trainer.schema import JobState


@functools.cache
def service_slots(concurrency: ConcurrencyConfig) -> dict[str, threading.BoundedSemaphore]:
    """In-process bounds on calls in flight per service (`concurrency.<service>`), on top of the task
    runner's width. Cached per setting, so every task of a study shares one set of bounds."""
    return {name: threading.BoundedSemaphore(getattr(concurrency, name)) for name in SERVICES}


@dataclass(frozen=True)
class TunedModel:
    """A base model tuned on one mix; `adapter_uri` is what the generator loads."""

    base_model: str
    mix: str
    key: str  # models/<base>/<mix>/<hash>
    adapter_uri: str
    job_id: str
    card_uri: str = ""


@dataclass(frozen=True)
class Shard:
    """One evaluation unit: a tuned model × task × language × seed."""

    model: TunedModel
    task: str
    language: str
    seed: int
    evalset: Built

    @property
    def key(self) -> str:
        return keys.shard_dir(self.model.key, self.task, self.language, self.seed)


# -- training -----------------------------------------------------------------------------------------------


def model_key(cfg: StudyConfig, base_model: str, base_model_ref: str, mix: Built) -> str:
    identity = keys.model_identity(cfg, base_model, base_model_ref, mix.manifest.data_sha256)
    return keys.model_key(base_model, mix.manifest.name, identity)


def trained_model(
    cfg: StudyConfig, store: ArtifactStore, base_model: str, base_model_ref: str, mix: Built
) -> TunedModel | None:
    """The tuned model if the store has it already (no trainer call), else None."""
    marker = keys.model_record(model_key(cfg, base_model, base_model_ref, mix))
    return TunedModel(**store.get_json(marker)) if store.exists(marker) else None


def store_outage(error: str) -> bool:
    """Whether a failed job's error is a transient one (the worker reports `<ErrorClass>: <message>`)."""
    return any(f"{cls.__name__}: " in error for cls in TRANSIENT)


def train_model(
    cfg: StudyConfig, store: ArtifactStore, trainer: TrainerClient, base_model: str, base_model_ref: str, mix: Built
) -> TunedModel:
    """Tune `base_model` on `mix` through the trainer service, unless the model is already in the store.

    The idempotency key is the model's hash: a resubmission after a crash returns the same job (which the
    trainer resumes from its last checkpoint), never a duplicate.
    """
    existing = trained_model(cfg, store, base_model, base_model_ref, mix)
    if existing is not None:
        return existing
    mix_name = mix.manifest.name
    key = model_key(cfg, base_model, base_model_ref, mix)

    with service_slots(cfg.concurrency)["trainer"]:
        job = trainer.submit(
            base_model=base_model_ref,
            dataset_uri=mix.uri,
            output_uri=store.uri(keys.training_output(key)),
            training=cfg.training,
            idempotency_key=keys.training_job_key(key, store.uri(key)),
            labels={"study": cfg.name, "base_model": base_model, "mix": mix_name},
        )
        progress.emit(progress.TrainingStarted(f"{base_model}/{mix_name}", job.id, cfg.training.max_steps))
        job = trainer.wait(job.id, on_progress=progress.training_reporter(f"{base_model}/{mix_name}"))
    progress.emit(progress.TrainingDone(f"{base_model}/{mix_name}", job.state.value, job.progress.step,
                                        job.progress.loss, job.error))  # fmt: skip
    if job.state is not JobState.SUCCEEDED:
        message = f"training {base_model} on {mix_name} ended {job.state.value}: {job.error}"
        # A worker that outlasted its store retries failed for want of a dependency, not for its input: the
        # task's retry resubmits under the same key and the trainer resumes from the last checkpoint.
        if job.state is JobState.FAILED and store_outage(job.error):
            raise Unavailable(message)
        raise FailedPrecondition(message)
    model = TunedModel(
        base_model=base_model,
        mix=mix_name,
        key=key,
        adapter_uri=job.outputs["adapter"].uri,
        job_id=job.id,
        card_uri=job.outputs["card"].uri if "card" in job.outputs else "",
    )
    store.put_json(keys.model_record(key), asdict(model))
    return model


# -- evaluation ---------------------------------------------------------------------------------------------


def shard_result_key(cfg: StudyConfig, shard: Shard) -> str:
    identity = keys.shard_identity(cfg, shard.task, shard.evalset.manifest.data_sha256, shard.seed)
    return keys.shard_result(shard.key, identity)


def evaluate_shard(cfg: StudyConfig, store: ArtifactStore, clients: Clients, shard: Shard) -> str:
    """Run one shard and store its ItemResult records and their samples; return the result key.

    Every item gets a record, also one that could not be graded (its outcome says why). Done shards are
    not rerun: the result file is written last, so its existence says the samples are there too.
    """
    key, started = shard_result_key(cfg, shard), time.monotonic()
    if store.exists(key):
        return key
    items = read_eval_set(store, shard.evalset)
    task = TASKS.get(shard.task)
    if task.method == "loglikelihood":
        graded = _score_choices(cfg, clients.generator, task, items, shard)
    elif task.graded_by == "judge":
        graded = _judged(cfg, clients, items, shard)
    elif task.graded_by == "lid":
        graded = _lid_graded(cfg, clients, task, items, shard)
    else:
        completions = _generate(cfg, clients.generator, items, shard)
        graded = [
            Graded(task.score(item, c.text) if not c.error else {}, _generated(c, item), _generation(item, c))
            for item, c in zip(items, completions, strict=True)
        ]
    if task.method == "generate" and task.graded_by != "lid":
        graded = _with_line_checks(cfg, clients.lid, graded, shard)
    records = [
        ItemResult(
            study=cfg.name,
            base_model=shard.model.base_model,
            mix=shard.model.mix,
            task=shard.task,
            variant=item.mode,
            language=shard.language,
            seed=shard.seed,
            item_id=item.id,
            metrics=g.metrics,
            outcome=g.outcome,
        )
        for item, g in zip(items, graded, strict=True)
    ]
    store.put_bytes(
        keys.shard_samples(key),
        dumps_samples(r.to_json() | g.sample for r, g in zip(records, graded, strict=True)),
    )
    store.put_bytes(key, results_to_jsonl(records))
    errors = sum(r.outcome is Outcome.ERROR for r in records)
    progress.emit(progress.ShardDone(shard.key, len(records), errors, time.monotonic() - started))
    return key


def read_shard(store: ArtifactStore, key: str) -> list[ItemResult]:
    return results_from_jsonl(store.get_bytes(key), source=key)


def _failed(error: ItemError, what: str) -> Outcome:
    """The outcome of an item a service failed on. A transient failure is raised instead, so that Prefect
    retries the shard rather than recording an error that a second try would not have; a cancelled call
    (an interrupted study) is raised too, so the shard is not stored and a rerun evaluates it."""
    if error.code in TRANSIENT_CODES or error.code == "CANCELLED":
        raise error_for(error.code, f"{what}: {error.message}", error.field)
    return Outcome.REFUSED if error.code == "INVALID_ARGUMENT" else Outcome.ERROR


def _generated(completion: Completion, item: EvalItem) -> Outcome:
    return _failed(completion.error, f"generation of item {item.id}") if completion.error else Outcome.OK


def _generation(item: EvalItem, completion: Completion) -> dict[str, Any]:
    sample = {
        "prompt": item.prompt,
        "response_prefix": item.response_prefix,
        "reply": completion.text,
        "finish_reason": completion.finish_reason,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "truncated_tokens": completion.truncated_tokens,
        "error": str(completion.error) if completion.error else None,
    }
    return sample | ({"answers": item.answers} if item.answers else {})


def _generate(
    cfg: StudyConfig, generator: GeneratorClient, items: Sequence[EvalItem], shard: Shard
) -> list[Completion]:
    """Completions in item order (a failed item's carries its error). Items are grouped by forced prefix:
    one Generate call per group."""
    params = cfg.evaluation.tasks[shard.task].sampling.with_seed(shard.seed)
    completions: dict[int, Completion] = {}
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.response_prefix, []).append(i)
    for prefix, indices in groups.items():
        with service_slots(cfg.concurrency)["generator"]:
            results = generator.generate_all(
                [items[i].prompt for i in indices],
                params,
                adapter=shard.model.adapter_uri,
                response_prefix=prefix,
                request_id=f"{shard.key}:{len(completions)}",
            )
        for result in results:
            completions[indices[result.index]] = result
    return [completions[i] for i in range(len(items))]


def _score_choices(
    cfg: StudyConfig, generator: GeneratorClient, task: Any, items: Sequence[EvalItem], shard: Shard
) -> list[Graded]:
    pairs = [(item.prompt, choice) for item in items for choice in item.choices]
    options = getattr(task.hook_module, "score_options", None)  # e.g. XNLI lm-eval-0.3: start_token="eos"
    extra = options(cfg.evaluation.tasks[shard.task]) if options else {}
    with service_slots(cfg.concurrency)["generator"]:
        results = iter(generator.score(pairs, adapter=shard.model.adapter_uri, request_id=shard.key, **extra))
    graded = []
    for item in items:
        scored = [next(results) for _ in item.choices]
        error = next((r.error for r in scored if r.error), None)
        sample = {
            "prompt": item.prompt,
            "choices": [plain(r, text=choice) for choice, r in zip(item.choices, scored, strict=True)],
            "label": item.label,
        }
        if error is None:
            graded.append(Graded(task.score(item, [r.logprob for r in scored]), Outcome.OK, sample))
        else:  # no metric: a missing log-likelihood would silently pick another answer
            graded.append(Graded({}, _failed(error, f"scoring of item {item.id}"), sample))
    return graded


def _judged(cfg: StudyConfig, clients: Clients, items: Sequence[EvalItem], shard: Shard) -> list[Graded]:
    """Generate, identify prompt and reply languages (lid), check line-level confusion, then judge; the
    task's hook turns each grade and its language checks into the task's metrics.

    The judge gets each reply's language from here, so it applies the paper's gate (a reply in another
    language than the target scores 1) without asking lid again. Items whose generation failed go no
    further: they keep the generation's outcome and no metric.
    """
    completions = _generate(cfg, clients.generator, items, shard)
    graded = [Graded({}, _generated(c, i), _generation(i, c)) for i, c in zip(items, completions, strict=True)]
    done = [n for n, g in enumerate(graded) if g.outcome is Outcome.OK]
    if not done:
        return graded
    slots = service_slots(cfg.concurrency)
    hook = TASKS.get(shard.task).hook_module
    # A task may judge only a sample of its replies (chat's `judged_sample`); the others get lid's metrics only.
    sampled = getattr(hook, "judged_ids", None)
    chosen = sampled(cfg.evaluation.tasks[shard.task], shard.language, cfg.evaluation.sample_seed) if sampled else None
    groups = ((clients.judge, [n for n in done if chosen is None or items[n].id in chosen]),
              (None, [n for n in done if chosen is not None and items[n].id not in chosen]))  # fmt: skip
    for judge, group in groups:
        if not group:
            continue
        judged = grade_replies(
            clients.lid,
            judge,
            prompts=[items[n].instruction or items[n].prompt for n in group],
            replies=[completions[n].text for n in group],
            targets=[shard.language] * len(group),
            grade_ids=[f"{shard.model.key}:{items[n].id}:{shard.seed}" for n in group],
            judged_metrics=hook.judged_metrics,  # the task's own metrics of a grade
            judge_options=cfg.judge.model_dump(include={"provider", "model", "template"}),
            run_id=cfg.name,
            lid_slot=slots["lid"],
            judge_slot=slots["judge"],
            gate_language=cfg.judge.gate_language,
        )
        for n, grade in zip(group, judged, strict=True):
            graded[n] = Graded(grade.metrics, grade.outcome, graded[n].sample | grade.sample)
    return graded


def _lid_graded(cfg: StudyConfig, clients: Clients, task: Any, items: Sequence[EvalItem], shard: Shard) -> list[Graded]:
    """Generate, then lid's line check of each reply in the Language Confusion Benchmark's manner; the task's
    hook turns a check into its metrics (LPR, WPR). A reply lid refuses (an empty one) is REFUSED, one without
    a line the benchmark checks (none of 5+ tokens: it skips those) UNPARSABLE; neither has a metric."""
    completions = _generate(cfg, clients.generator, items, shard)
    graded = [Graded({}, _generated(c, i), _generation(i, c)) for i, c in zip(items, completions, strict=True)]
    done = [n for n, g in enumerate(graded) if g.outcome is Outcome.OK]
    replies, targets = [completions[n].text for n in done], [shard.language] * len(done)
    checks = check_lines(clients.lid, replies, targets, lid_slot=service_slots(cfg.concurrency)["lid"])
    for n, check in zip(done, checks, strict=True):
        sample = graded[n].sample | {"instruction": items[n].instruction, "lid_lines": line_sample(check)}
        if check.error:
            graded[n] = Graded({}, Outcome.REFUSED, sample | {"lid_error": check.error})
        else:
            metrics = task.hook_module.lid_metrics(check)
            graded[n] = Graded(metrics, Outcome.OK if metrics else Outcome.UNPARSABLE, sample)
    return graded


def _with_line_checks(cfg: StudyConfig, lid: Any, graded: list[Graded], shard: Shard) -> list[Graded]:
    """Every generated reply's line-level language check (the confusion task's, per line: label and
    probability) added to its sample as `lid_lines`, for the report's line-confusion summary. The task's own
    metrics and outcomes stay as they are."""
    done = [n for n, g in enumerate(graded) if g.sample.get("reply") is not None and g.sample.get("error") is None]
    if not done:
        return graded
    replies = [graded[n].sample["reply"] for n in done]
    lid_slot = service_slots(cfg.concurrency)["lid"]
    checks = check_lines(lid, replies, [shard.language] * len(done), lid_slot=lid_slot)
    out = list(graded)
    for n, check in zip(done, checks, strict=True):
        out[n] = Graded(graded[n].metrics, graded[n].outcome, graded[n].sample | {"lid_lines": line_sample(check)})
    return out
