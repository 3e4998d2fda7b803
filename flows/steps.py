"""The study's steps as plain functions over the typed clients and the artifact store (no Prefect here).

`flows.study` wraps each in a Prefect task. Every step's output has a key derived from a hash of what
determines it (`flows.keys`, docs/artifact-keys.md); a step first looks for its key and returns what is
there, so a killed study resumes by computing only what is missing, and a finished one reruns without a
single training, generation or judge call.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from flows import keys
from flows.clients import Clients
from flows.config import StudyConfig
from flows.data.build import Built, read_eval_set
from flows.evals import TASKS, EvalItem
from flows.results import ItemResult, results_from_jsonl, results_to_jsonl
from services.common.errors import FailedPrecondition
from services.common.store import ArtifactStore
from services.generator.client import GeneratorClient
from services.judge.records import GradeItem
from services.trainer.client import TrainerClient
from services.trainer.schema import JobState

# In-process bounds on calls in flight per service, on top of the task runner's worker count.
SERVICE_SLOTS = {"generator": 2, "judge": 2, "lid": 4, "trainer": 1}
_slots = {name: threading.BoundedSemaphore(n) for name, n in SERVICE_SLOTS.items()}


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

    with _slots["trainer"]:
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
    """Run one shard and store its ItemResult records; return the key. Done shards are not rerun."""
    key = shard_result_key(cfg, shard)
    if store.exists(key):
        return key
    items = read_eval_set(store, shard.evalset)
    task = TASKS.get(shard.task)
    if task.method == "loglikelihood":
        metrics = _score_choices(clients.generator, task, items, shard)
    elif task.graded_by == "judge":
        metrics = _judged(cfg, clients, items, shard)
    else:
        metrics = [
            task.score(item, text)
            for item, text in zip(items, _generate(cfg, clients.generator, items, shard), strict=True)
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
            metrics=m,
        )
        for item, m in zip(items, metrics, strict=True)
    ]
    store.put_bytes(key, results_to_jsonl(records))
    return key


def read_shard(store: ArtifactStore, key: str) -> list[ItemResult]:
    return results_from_jsonl(store.get_bytes(key), source=key)


def _generate(cfg: StudyConfig, generator: GeneratorClient, items: Sequence[EvalItem], shard: Shard) -> list[str]:
    """Completions in item order. Items are grouped by forced prefix: one Generate call per group."""
    params = cfg.evaluation.tasks[shard.task].sampling.with_seed(shard.seed)
    texts: dict[int, str] = {}
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.response_prefix, []).append(i)
    for prefix, indices in groups.items():
        with _slots["generator"]:
            results = generator.generate_all(
                [items[i].prompt for i in indices],
                params,
                adapter=shard.model.adapter_uri,
                response_prefix=prefix,
                request_id=f"{shard.key}:{len(texts)}",
            )
        for result in results:
            if result.error:
                item = items[indices[result.index]]
                raise FailedPrecondition(f"generation failed for item {item.id}: {result.error}")
            texts[indices[result.index]] = result.text
    return [texts[i] for i in range(len(items))]


def _score_choices(
    generator: GeneratorClient, task: Any, items: Sequence[EvalItem], shard: Shard
) -> list[dict[str, float]]:
    pairs = [(item.prompt, choice) for item in items for choice in item.choices]
    with _slots["generator"]:
        results = generator.score(pairs, adapter=shard.model.adapter_uri, request_id=shard.key)
    failed = next((r for r in results if r.error), None)
    if failed is not None:  # a missing log-likelihood would silently pick another answer
        raise FailedPrecondition(f"scoring failed for pair {failed.index} of shard {shard.key}: {failed.error}")
    logprobs = iter(r.logprob for r in results)
    return [task.score(item, [next(logprobs) for _ in item.choices]) for item in items]


def _judged(cfg: StudyConfig, clients: Clients, items: Sequence[EvalItem], shard: Shard) -> list[dict[str, float]]:
    """Generate, identify prompt and reply languages (lid), check line-level confusion, then judge; the
    task's hook turns each grade and its language checks into the task's metrics.

    The judge gets each reply's language from here, so it applies the paper's gate (a reply in another
    language than the target scores 1) without asking lid again.
    """
    replies = _generate(cfg, clients.generator, items, shard)
    prompts = [item.instruction or item.prompt for item in items]
    with _slots["lid"]:
        ids = clients.lid.identify([*prompts, *replies], k=1, strip_role_markers=True)
        checks = clients.lid.check_language([(reply, shard.language) for reply in replies])
    prompt_ids, reply_ids = ids[: len(items)], ids[len(items) :]
    grade_items = [
        GradeItem(
            id=f"{shard.model.key}:{item.id}:{shard.seed}",
            prompt=prompt,
            response=reply,
            target_language=shard.language,
            response_language=_top(reply_id) or "und",
        )
        for item, prompt, reply, reply_id in zip(items, prompts, replies, reply_ids, strict=True)
    ]
    with _slots["judge"]:
        graded = clients.judge.grade(
            grade_items,
            provider=cfg.judge.provider,
            model=cfg.judge.model,
            template=cfg.judge.template,
            run_id=cfg.name,
        )
    judged_metrics = TASKS.get(shard.task).hook_module.judged_metrics  # the task's own metrics of a graded reply
    return [
        judged_metrics(record, p, r, shard.language, check)
        for record, p, r, check in zip(graded.records, prompt_ids, reply_ids, checks, strict=True)
    ]


def _top(identification: Any) -> str:
    return identification.predictions[0].language if identification.predictions else ""
