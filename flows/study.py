"""The study as Prefect flows: prepare → train → evaluate → aggregate → report, composed by `study`.

    polyglot study run configs/smoke.yaml      # local: starts the services, runs this flow, prints the report
    prefect deploy --prefect-file deploy/prefect/prefect.yaml --name cluster-check   # cluster: a work pool

Tasks reach services only through the typed gRPC clients. Each task's output has a content-hash key in
the artifact store (see `flows.steps`): a rerun skips what exists, so a killed study continues where it
stopped and a finished one reruns in seconds. Transient gRPC failures (UNAVAILABLE, DEADLINE_EXCEEDED)
are retried with back-off; INVALID_ARGUMENT and other caller errors fail at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import zip_longest
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows import cancel, keys, progress, steps
from flows.clients import Clients
from flows.config import StudyConfig, load_config
from flows.data.build import Built, build_eval_sets, build_mixes
from flows.data.labelling import service_labeller
from flows.data.translation import judge_translator
from flows.evals import TASKS
from services.common.errors import TRANSIENT
from services.common.store import ArtifactStore, open_store, retrying


def _transient_only(task_, task_run, state) -> bool:
    """Prefect retry condition: retry what may pass on a second try, never a caller's mistake, and nothing
    once the run is interrupted."""
    return not cancel.requested() and isinstance(state.result(raise_on_failure=False), TRANSIENT)


RETRY = dict(retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=_transient_only, cache_policy=NO_CACHE)


# -- tasks --------------------------------------------------------------------------------------------------


@task(name="build-mixes", tags=["lid", "judge"], **RETRY)
def prepare_mixes(cfg: StudyConfig, store: ArtifactStore, clients: Clients) -> list[Built]:
    translator = judge_translator(clients.judge, cfg.judge.provider, cfg.judge.model, run_id=cfg.name)
    return build_mixes(cfg.data, store, service_labeller(clients.lid), translator, progress.DataReporter())


@task(name="build-eval-sets", tags=["judge"], **RETRY)
def prepare_eval_sets(cfg: StudyConfig, store: ArtifactStore, clients: Clients) -> list[Built]:
    translator = judge_translator(clients.judge, cfg.judge.provider, cfg.judge.model, run_id=cfg.name)
    return build_eval_sets(cfg.evaluation, store, translator, progress.DataReporter())


@task(name="train", task_run_name="train-{base_model}-{mix.manifest.name}", tags=["trainer"], **RETRY)
def train(
    cfg: StudyConfig, store: ArtifactStore, clients: Clients, base_model: str, base_model_ref: str, mix: Built
) -> steps.TunedModel:
    cancel.raise_if_requested()  # a queued task does not start after an interrupt
    return steps.train_model(cfg, store, clients.trainer, base_model, base_model_ref, mix)


@task(name="evaluate", task_run_name="eval-{shard.model.mix}-{shard.task}-{shard.language}-s{shard.seed}", **RETRY)
def evaluate(cfg: StudyConfig, store: ArtifactStore, clients: Clients, shard: steps.Shard) -> str:
    cancel.raise_if_requested()
    try:
        # Its generator calls go to the replica its adapter routes to (a bare base model's shards spread by key).
        return steps.evaluate_shard(cfg, store, clients.routed_by(shard.model.adapter_uri or shard.key), shard)
    except Exception as exc:  # said as it happens; a retry that passes clears it
        progress.emit(progress.ShardFailed(shard.key, str(exc)))
        raise


# -- flows --------------------------------------------------------------------------------------------------


@flow(name="prepare")
def prepare(cfg: StudyConfig, store: ArtifactStore, clients: Clients) -> dict[str, list[Built]]:
    """Tuning mixes (LID-filtered, through lid) and evaluation sets (translated through judge when needed)."""
    return {"mixes": prepare_mixes(cfg, store, clients), "evalsets": prepare_eval_sets(cfg, store, clients)}


@flow(name="train")
def train_all(
    cfg: StudyConfig, store: ArtifactStore, clients: Clients, mixes: list[Built], base_models: dict[str, str]
) -> list[steps.TunedModel]:
    """One trainer job per base model × mix (the trainer serialises them on its workers). Models already in
    the store are read, not scheduled: a finished study reruns without a task per model."""
    pairs = [(name, ref, mix) for name, ref in base_models.items() for mix in mixes]
    done = [steps.trained_model(cfg, store, name, ref, mix) for name, ref, mix in pairs]
    for model in filter(None, done):
        progress.emit(progress.TrainingDone(f"{model.base_model}/{model.mix}", "stored"))
    futures = {i: train.submit(cfg, store, clients, *pair) for i, pair in enumerate(pairs) if done[i] is None}
    return [done[i] if done[i] is not None else futures[i].result() for i in range(len(pairs))]


def plan_shards(cfg: StudyConfig, models: list[steps.TunedModel], evalsets: list[Built]) -> list[steps.Shard]:
    by_task_language = {(b.manifest.task, b.manifest.language): b for b in evalsets}
    shards = []
    for model in models:
        for task_name, task_cfg in cfg.evaluation.tasks.items():
            seeds = TASKS.get(task_name).run_seeds(cfg.seeds)
            for language in task_cfg.languages:
                evalset = by_task_language[(task_name, language)]
                shards += [steps.Shard(model, task_name, language, seed, evalset) for seed in seeds]
    return shards


@flow(name="evaluate")
def evaluate_all(
    cfg: StudyConfig, store: ArtifactStore, clients: Clients, models: list[steps.TunedModel], evalsets: list[Built]
) -> list[str]:
    """Every model × task × language × seed; each shard's records are stored as soon as it finishes.
    Shards already in the store are not scheduled, so a resumed study runs only the missing ones."""
    keys: dict[int, str] = {}
    shards = plan_shards(cfg, models, evalsets)
    stored = {i for i, shard in enumerate(shards) if store.exists(steps.shard_result_key(cfg, shard))}
    progress.emit(progress.plan_shards(shards, {shards[i].key for i in stored}))
    futures = {}
    for i, shard in in_turns(shards):
        if i in stored:
            keys[i] = steps.shard_result_key(cfg, shard)
        else:
            futures[i] = evaluate.submit(cfg, store, clients, shard)
    keys.update({i: f.result() for i, f in futures.items()})
    for line in clients.generator_routing():  # adapter loads per generator replica
        get_run_logger().info(line)
    return [keys[i] for i in sorted(keys)]


def in_turns(shards: list[steps.Shard]) -> list[tuple[int, steps.Shard]]:
    """(index, shard), taking each model's shards in turn: shards of different adapters then run side by side,
    so generator replicas each keep to their own adapters rather than all taking one adapter's shards."""
    by_model: dict[str, list[tuple[int, steps.Shard]]] = {}
    for pair in enumerate(shards):
        by_model.setdefault(pair[1].model.key, []).append(pair)
    return [pair for turn in zip_longest(*by_model.values()) for pair in turn if pair is not None]


@flow(name="aggregate")
def aggregate_results(cfg: StudyConfig, store: ArtifactStore, shard_keys: list[str]) -> tuple[Any, str]:
    """Means, bootstrap CIs and paired tests over every shard; stored under a key of its inputs."""
    from flows.aggregate import Aggregate, aggregate

    key = keys.aggregate_key(cfg, shard_keys)
    if store.exists(key):
        return Aggregate.from_json(store.get_json(key)), key
    records = [r for key_ in shard_keys for r in steps.read_shard(store, key_)]
    aggregated = aggregate(records, cfg.report, shards=shard_keys)
    store.put_json(key, aggregated.to_json())
    return aggregated, key


@flow(name="report")
def report(
    cfg: StudyConfig,
    store: ArtifactStore,
    aggregated: Any,
    aggregate_key: str,
    mixes: list[Built],
    models: list[steps.TunedModel],
    out_dir: Path,
) -> dict[str, str]:
    """Figures and the HTML/Markdown report, copied into the store; a report already there is fetched.
    Then the study fails if a task has more items that ended in error than `evaluation.max_error_share`:
    its numbers would not be trusted, but everything stays stored to look at."""
    from flows.aggregate import check_error_share
    from flows.figures import render_figures
    from flows.report import render_report
    from flows.report.paper_compare import newest_aggregate, other_study
    from flows.samples import copy_cell_samples

    compared = newest_aggregate(cfg)  # the study `report.compare_with` names, if any
    prefix = keys.report_prefix(cfg, aggregate_key, [m.key for m in models], [b.key for b in mixes],
                                compared[2].key if compared else None)  # fmt: skip
    names = {"html": "report.html", "md": "report.md"}
    if not store.exists(f"{prefix}/{keys.REPORT_DONE}"):
        figures = render_figures(cfg, aggregated.rows, out_dir / "figures")
        manifests = {b.manifest.name: b.manifest.model_dump(mode="json") for b in mixes}
        cards = {f"{m.base_model}/{m.mix}": _card(store, m) for m in models}
        samples = copy_cell_samples(store, aggregated.shards, out_dir)
        render_report(
            cfg,
            aggregated.rows,
            aggregated.tests,
            figures,
            manifests,
            cards,
            out_dir,
            outcomes=aggregated.outcomes,
            samples=samples,
            compared=other_study(cfg, compared) if compared else None,  # the aggregate the key names
        )
        done = out_dir / keys.REPORT_DONE
        done.unlink(missing_ok=True)
        store.put_dir(prefix, out_dir)
        # The aggregate goes last: its presence in the store marks the report complete.
        done.write_text(json.dumps(aggregated.to_json(), indent=1, sort_keys=True))
        store.put_file(f"{prefix}/{keys.REPORT_DONE}", done)
    else:
        store.get_dir(prefix, out_dir)
    paths = {kind: str(out_dir / name) for kind, name in names.items() if (out_dir / name).exists()}
    paths["store"] = store.uri(prefix)
    _report_artifact(cfg, paths)  # before the error-share check: a study that fails on it is linked too
    check_error_share(aggregated.outcomes, cfg.evaluation.max_error_share)
    return paths


def _report_artifact(cfg: StudyConfig, paths: dict[str, str]) -> None:
    """A markdown artifact on the study's flow run (the root run, not this subflow) saying where its report
    is: the store URI, which outlives a cluster's flow-run pod, and the files where the run ran."""
    from prefect.artifacts import MarkdownArtifact
    from prefect.context import FlowRunContext
    from prefect.runtime import flow_run

    if FlowRunContext.get() is None:  # `report.fn` called outside a flow run: there is no run to attach it to
        return
    rows = "".join(f"| {kind} | `{where}` |\n" for kind, where in paths.items())
    MarkdownArtifact(
        key="report-" + re.sub(r"[^a-z0-9]+", "-", cfg.name.lower()).strip("-"),  # keys: [a-z0-9-] only
        description=f"Where the report of study {cfg.name} is",
        markdown=f"# Report of study `{cfg.name}`\n\n| | where |\n|---|---|\n{rows}",
        flow_run_id=UUID(flow_run.root_flow_run_id),
    ).create()


def _card(store: ArtifactStore, model: steps.TunedModel) -> dict[str, Any]:
    from services.common.store import open_object

    if not model.card_uri:
        return {}
    card_store, key = open_object(model.card_uri)
    return retrying(card_store).get_json(key)


def model_refs(cfg: StudyConfig, base_models: dict[str, str] | None, command: str) -> dict[str, str]:
    """What each base model loads from: `base_models`, else the config's `model`; a tiny random model has
    no file until `command` (which runs the flow locally) builds it."""
    refs = base_models or {m.name: str(m.model) for m in cfg.base_models if m.model}
    missing = [m.name for m in cfg.base_models if m.name not in refs]
    if missing:
        raise ValueError(f"no model files for {missing}: tiny_random models are built by `{command}`")
    return refs


@contextmanager
def connected(cfg: StudyConfig) -> Iterator[Clients]:
    """The study's clients, which an interrupt closes (calls in flight end at once); closed afterwards."""
    clients = cancel.track(Clients.connect(cfg))
    try:
        yield clients
    finally:
        cancel.untrack(clients)
        clients.close()


def report_dir(cfg: StudyConfig, out_dir: str | None) -> Path:
    return Path(out_dir or cfg.report.output_dir or Path(".polyglot") / "reports" / cfg.name).resolve()


def sized(subflow: Any, cfg: StudyConfig) -> Any:
    """`subflow` with the config's task runner width (`concurrency.task_runner_workers`). The subflows submit
    the tasks, and a subflow runs its tasks on its own runner, not the calling flow's, so each gets it."""
    return subflow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=cfg.concurrency.task_runner_workers))


@flow(name="study", log_prints=True)
def study(
    config_path: str,
    base_models: dict[str, str] | None = None,
    out_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
    tasks: list[str] | None = None,
) -> dict[str, str]:
    """The whole study from a config file. `base_models` maps each base model name to what the trainer and
    generator load (a hub id or a local directory); by default the config's `model` field. `overrides` are
    dotted config keys (e.g. `{"services.lid": "lid:50051", "artifact_store": "s3://polyglot/paper"}`), so a
    cluster deployment can point a paper config at its own services and store. `tasks`, when given, are
    the only evaluation tasks run."""
    cfg = load_config(Path(config_path), overrides, tasks=tasks)
    logger = get_run_logger()
    # Every store call of the study waits out an outage (POLYGLOT_STORE_RETRY_SECONDS): the flow bodies
    # (listing, aggregate, report) have no task retry, and a shard retried for a store blip would pay again.
    store = retrying(open_store(cfg.artifact_store))
    refs = model_refs(cfg, base_models, "polyglot study run")
    with connected(cfg) as clients:
        data = sized(prepare, cfg)(cfg, store, clients)
        logger.info("data: %d mixes, %d eval sets", len(data["mixes"]), len(data["evalsets"]))
        models = sized(train_all, cfg)(cfg, store, clients, data["mixes"], refs)
        logger.info("models: %s", ", ".join(m.key for m in models))
        shard_keys = sized(evaluate_all, cfg)(cfg, store, clients, models, data["evalsets"])
        logger.info("evaluated %d shards", len(shard_keys))
        aggregated, aggregate_key = aggregate_results(cfg, store, shard_keys)
        return report(cfg, store, aggregated, aggregate_key, data["mixes"], models, report_dir(cfg, out_dir))
