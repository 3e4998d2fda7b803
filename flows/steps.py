"""The study's steps as plain functions over the typed clients and the artifact store (no Prefect here).

`flows.study` wraps each in a Prefect task. Every step's output has a key derived from a hash of what
determines it (ARCHITECTURE.md, "Identity, caching and resume"); a step first looks for its key and
returns what is there, so a killed study resumes by computing only what is missing, and a finished one
reruns without a single training, generation or judge call.

    models/<base>/<mix>/<hash>/model.json                       a tuned model: adapter URI, job, card
    results/<base>/<mix>/<hash>/<task>/<lang>/seed=<s>/<h>.jsonl one evaluation shard (ItemResult records)
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from flows.data.build import Built, read_eval_set
from flows.evals import TASKS, EvalItem
from flows.results import ItemResult, results_from_jsonl, results_to_jsonl
from services.common.config import StudyConfig, canonical_json
from services.common.errors import FailedPrecondition
from services.common.store import ArtifactStore

# Bump when the records a step writes for equal inputs change, so stale shards are not reused.
STEP_VERSION = 1
HASH_CHARS = 16
# In-process bounds on calls in flight per service, on top of the task runner's worker count.
SERVICE_SLOTS = {"generator": 2, "judge": 2, "lid": 4, "trainer": 1}
_slots = {name: threading.BoundedSemaphore(n) for name, n in SERVICE_SLOTS.items()}


def digest(identity: Any) -> str:
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:HASH_CHARS]


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
        return f"results/{self.model.key.removeprefix('models/')}/{self.task}/{self.language}/seed={self.seed}"


# -- training -----------------------------------------------------------------------------------------------


def model_identity(cfg: StudyConfig, base_model: str, mix: Built, base_model_ref: str) -> dict[str, Any]:
    base = cfg.base_model(base_model)
    return {
        "version": STEP_VERSION,
        "base_model": base.model_dump(mode="json", exclude={"name"}) if base.model else base_model_ref,
        "tiny_random": base.tiny_random.model_dump(mode="json", exclude={"tokenizer"}) if base.tiny_random else None,
        "dataset_sha256": mix.manifest.data_sha256,
        "training": cfg.training.model_dump(mode="json"),
    }


def hyperparameters(cfg: StudyConfig) -> dict[str, Any]:
    t = cfg.training
    return {
        "lora_r": t.lora_r,
        "lora_alpha": float(t.lora_alpha),
        "lora_dropout": t.lora_dropout,
        "target_modules": [t.lora_target_modules] if isinstance(t.lora_target_modules, str) else t.lora_target_modules,
        "learning_rate": t.learning_rate,
        "lr_scheduler": t.lr_scheduler,
        "warmup_ratio": t.warmup_ratio,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "max_steps": t.max_steps,
        "per_device_batch_size": t.per_device_batch_size,
        "effective_batch_size": t.effective_batch_size,
        "max_length": t.max_length,
        "seed": t.seed,
    }


def model_key(cfg: StudyConfig, base_model: str, base_model_ref: str, mix: Built) -> str:
    return f"models/{base_model}/{mix.manifest.name}/{digest(model_identity(cfg, base_model, mix, base_model_ref))}"


def trained_model(
    cfg: StudyConfig, store: ArtifactStore, base_model: str, base_model_ref: str, mix: Built
) -> TunedModel | None:
    """The tuned model if the store has it already (no trainer call), else None."""
    marker = f"{model_key(cfg, base_model, base_model_ref, mix)}/model.json"
    return TunedModel(**store.get_json(marker)) if store.exists(marker) else None


def train_model(
    cfg: StudyConfig, store: ArtifactStore, trainer: Any, base_model: str, base_model_ref: str, mix: Built
) -> TunedModel:
    """Tune `base_model` on `mix` through the trainer service, unless the model is already in the store.

    The idempotency key is the model's hash: a resubmission after a crash returns the same job (which the
    trainer resumes from its last checkpoint), never a duplicate.
    """
    existing = trained_model(cfg, store, base_model, base_model_ref, mix)
    if existing is not None:
        return existing
    from polyglot.v1 import trainer_pb2

    mix_name = mix.manifest.name
    key = model_key(cfg, base_model, base_model_ref, mix)

    with _slots["trainer"]:
        job = trainer.submit(
            base_model=base_model_ref,
            dataset_uri=mix.uri,
            output_uri=store.uri(f"{key}/job"),
            hyperparameters=hyperparameters(cfg),
            merge=cfg.training.merge_adapter,
            # The store is part of the key: the same model trained for another store is another job.
            idempotency_key=f"{key.replace('/', ':')}:{digest(store.uri(key))}",
            labels={"study": cfg.name, "base_model": base_model, "mix": mix_name},
        )
        job = trainer.wait(job.id)
    if job.state != trainer_pb2.JOB_STATE_SUCCEEDED:
        state = trainer_pb2.JobState.Name(job.state)
        raise FailedPrecondition(f"training {base_model} on {mix_name} ended {state}: {job.error}")
    model = TunedModel(
        base_model=base_model,
        mix=mix_name,
        key=key,
        adapter_uri=job.outputs["adapter"].uri,
        job_id=job.id,
        card_uri=job.outputs["card"].uri if "card" in job.outputs else "",
    )
    store.put_json(f"{key}/model.json", asdict(model))
    return model


# -- evaluation ---------------------------------------------------------------------------------------------


def shard_identity(cfg: StudyConfig, shard: Shard) -> dict[str, Any]:
    task_cfg = getattr(cfg.evaluation.tasks, shard.task)
    sampling = getattr(task_cfg, "sampling", None)
    identity = {
        "version": STEP_VERSION,
        "evalset_sha256": shard.evalset.manifest.data_sha256,
        "sampling": sampling.model_dump(mode="json") if sampling is not None else None,
        "seed": shard.seed,
    }
    if shard.task == "chat":
        identity["judge"] = cfg.judge.model_dump(mode="json", exclude={"concurrency", "api_key_env"})
    return identity


def shard_result_key(cfg: StudyConfig, shard: Shard) -> str:
    return f"{shard.key}/{digest(shard_identity(cfg, shard))}.jsonl"


def evaluate_shard(cfg: StudyConfig, store: ArtifactStore, clients: Any, shard: Shard) -> str:
    """Run one shard and store its ItemResult records; return the key. Done shards are not rerun."""
    key = shard_result_key(cfg, shard)
    if store.exists(key):
        return key
    items = read_eval_set(store, shard.evalset)
    task = TASKS.get(shard.task)
    if task.method == "loglikelihood":
        metrics = _score_choices(clients.generator, task, items, shard)
    elif task.graded_by == "judge":
        metrics = _chat(cfg, clients, items, shard)
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


def _generate(cfg: StudyConfig, generator: Any, items: Sequence[EvalItem], shard: Shard) -> list[str]:
    """Completions in item order. Items are grouped by forced prefix: one Generate call per group."""
    params = getattr(cfg.evaluation.tasks, shard.task).sampling.with_seed(shard.seed)
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
            if result.status.code:
                raise FailedPrecondition(
                    f"generation failed for item {items[indices[result.index]].id}: {result.status.message}"
                )
            texts[indices[result.index]] = result.text
    return [texts[i] for i in range(len(items))]


def _score_choices(generator: Any, task: Any, items: Sequence[EvalItem], shard: Shard) -> list[dict[str, float]]:
    pairs = [(item.prompt, choice) for item in items for choice in item.choices]
    with _slots["generator"]:
        results = generator.score(pairs, adapter=shard.model.adapter_uri, request_id=shard.key)
    logprobs = iter(r.logprob for r in results)
    return [task.score(item, [next(logprobs) for _ in item.choices]) for item in items]


def _chat(cfg: StudyConfig, clients: Any, items: Sequence[EvalItem], shard: Shard) -> list[dict[str, float]]:
    """Generate, identify prompt and reply languages (lid), check line-level confusion, then judge.

    The judge gets each reply's language from here, so it applies the paper's gate (a reply in another
    language than the target scores 1) without asking lid again.
    """
    from services.judge.records import GradeItem

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
    return [
        _chat_item_metrics(record, p, r, shard.language, check)
        for record, p, r, check in zip(graded.records, prompt_ids, reply_ids, checks, strict=True)
    ]


def _chat_item_metrics(record: Any, prompt_id: Any, reply_id: Any, target: str, check: Any) -> dict[str, float]:
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


def _top(identification: Any) -> str:
    return identification.predictions[0].language if identification.predictions else ""
