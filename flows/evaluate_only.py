"""`polyglot eval`: evaluate models that are not trained here, through the study's own steps.

A study's `evaluate_models` names base models as they are, or with a LoRA adapter made elsewhere. This flow
builds the evaluation sets, evaluates every chosen model on every task, language and seed, aggregates and
reports: the study flow without building mixes and without a single trainer call. Each model becomes the
study's `TunedModel` record with the given adapter ("" for the bare base model), so the shards, the
aggregate and the report are the study's; the report's mix column is the model's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows import keys, steps
from flows.clients import Clients
from flows.config import StudyConfig, load_config
from flows.config.evaluated import EvaluatedModel
from flows.study import (
    aggregate_results,
    connected,
    evaluate_all,
    model_refs,
    prepare_eval_sets,
    report,
    report_dir,
    sized,
)
from services.common.errors import InvalidArgument, NotFound
from services.common.store import ArtifactStore, open_store

# What this flow calls (never the trainer): a local `polyglot eval` starts and checks only these.
SERVICES_USED = ("lid", "generator", "judge")


def chosen(cfg: StudyConfig, names: list[str] | None) -> list[EvaluatedModel]:
    """The config's `evaluate_models`, or only those named; an unknown name or an empty list is an error."""
    known = [m.name for m in cfg.evaluate_models]
    if not known:
        raise InvalidArgument("the study lists no models to evaluate", field="evaluate_models")
    unknown = sorted(set(names or []) - set(known))
    if unknown:
        raise InvalidArgument(f"no evaluate_models entry named {unknown}; known: {', '.join(known)}", field="--model")
    return [m for m in cfg.evaluate_models if not names or m.name in names]


def adapter_content(uri: str) -> dict[str, str]:
    """Each file's SHA-256 by its path inside the adapter: the hashes the store keeps with its objects (S3's
    metadata; for a local directory, computed from the files, as when the generator fetches it)."""
    content = {info.key: info.sha256 for info in open_store(uri).list("")}
    if not content:
        raise NotFound(f"no adapter files at {uri}", field="evaluate_models.adapter")
    return content


def as_tuned(cfg: StudyConfig, model: EvaluatedModel, base_model_ref: str) -> steps.TunedModel:
    """The study's model record for an evaluated model: its shards go under its own content-hash key."""
    adapter = adapter_content(model.adapter) if model.adapter else None
    identity = keys.evaluated_model_identity(cfg, model.base_model, base_model_ref, adapter)
    key = keys.model_key(model.base_model, model.name, identity)
    return steps.TunedModel(model.base_model, model.name, key, adapter_uri=model.adapter or "", job_id="")


def evaluate_models(
    cfg: StudyConfig, store: ArtifactStore, clients: Clients, models: list[steps.TunedModel], out_dir: Path
) -> dict[str, str]:
    """Eval sets → shards → aggregate → report, with the study's flows (the trainer is never called)."""
    logger = get_run_logger()
    evalsets = prepare_eval_sets(cfg, store, clients)
    shard_keys = sized(evaluate_all, cfg)(cfg, store, clients, models, evalsets)
    logger.info("evaluated %d shards of %s", len(shard_keys), ", ".join(m.mix for m in models))
    aggregated, aggregate_key = aggregate_results(cfg, store, shard_keys)
    return report(cfg, store, aggregated, aggregate_key, [], models, out_dir)


@flow(name="evaluate-models", log_prints=True)
def evaluate_only(
    config_path: str,
    base_models: dict[str, str] | None = None,
    out_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
    tasks: list[str] | None = None,
    models: list[str] | None = None,
) -> dict[str, str]:
    """The evaluated models of a study file (`models`: only these names), as `flows.study.study` takes its
    arguments, so `polyglot eval` runs it the way `study run` runs the study."""
    cfg = load_config(Path(config_path), overrides, tasks=tasks)
    refs = model_refs(cfg, base_models, "polyglot eval")
    tuned = [as_tuned(cfg, m, refs[m.base_model]) for m in chosen(cfg, models)]
    with connected(cfg) as clients:
        return evaluate_models(cfg, open_store(cfg.artifact_store), clients, tuned, report_dir(cfg, out_dir))
