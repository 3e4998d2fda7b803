"""The study's steps as plain functions over the typed clients and the artifact store (no Prefect here).

`flows.study` wraps each in a Prefect task. Every step's output has a key derived from a hash of what
determines it (`flows.keys`, docs/artifact-keys.md); a step first looks for its key and returns what is
there, so a killed study resumes by computing only what is missing, and a finished one reruns without a
single training, generation or judge call.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from flows import keys
from flows.clients import Clients
from flows.config import StudyConfig
from flows.config.schema import ConcurrencyConfig
from flows.data.build import Built, read_eval_set
from flows.evals import TASKS, EvalItem
from flows.grading import Graded, grade_replies, plain
from flows.results import ItemResult, Outcome, results_from_jsonl, results_to_jsonl
from flows.samples import dumps_samples
from services.common.catalog import SERVICES
from services.common.errors import TRANSIENT_CODES, FailedPrecondition, ItemError, error_for
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
        job = trainer.wait(job.id)
    if job.state is not JobState.SUCCEEDED:
        raise FailedPrecondition(f"training {base_model} on {mix_name} ended {job.state.value}: {job.error}")
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
    key = shard_result_key(cfg, shard)
    if store.exists(key):
        return key
    items = read_eval_set(store, shard.evalset)
    task = TASKS.get(shard.task)
    if task.method == "loglikelihood":
        graded = _score_choices(cfg, clients.generator, task, items, shard)
    elif task.graded_by == "judge":
        graded = _judged(cfg, clients, items, shard)
    else:
        completions = _generate(cfg, clients.generator, items, shard)
        graded = [
            Graded(task.score(item, c.text) if not c.error else {}, _generated(c, item), _generation(item, c))
            for item, c in zip(items, completions, strict=True)
        ]
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
    with service_slots(cfg.concurrency)["generator"]:
        results = iter(generator.score(pairs, adapter=shard.model.adapter_uri, request_id=shard.key))
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
    judged = grade_replies(
        clients.lid,
        clients.judge,
        prompts=[items[n].instruction or items[n].prompt for n in done],
        replies=[completions[n].text for n in done],
        targets=[shard.language] * len(done),
        grade_ids=[f"{shard.model.key}:{items[n].id}:{shard.seed}" for n in done],
        judged_metrics=TASKS.get(shard.task).hook_module.judged_metrics,  # the task's own metrics of a grade
        judge_options=cfg.judge.model_dump(include={"provider", "model", "template"}),
        run_id=cfg.name,
        lid_slot=slots["lid"],
        judge_slot=slots["judge"],
    )
    for n, grade in zip(done, judged, strict=True):
        graded[n] = Graded(grade.metrics, grade.outcome, graded[n].sample | grade.sample)
    return graded
