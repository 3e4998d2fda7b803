"""Artifact keys: where every step of the study stores what it made, named by a hash of what determines it.

One module builds every key and every identity behind one, so "is this step done?" has one answer and
the scheme is documented in one place (docs/artifact-keys.md, which says why resume is correct):

    datasets/labelled/<h>/rows.jsonl                       the conversations with their LID labels
    datasets/<mix>/<h>/data.jsonl                          a tuning mix
    evalsets/<task>/<lang>/<h>/items.jsonl                 an evaluation set
    models/<base>/<mix>/<h>/model.json                     a tuned model (the trainer writes under .../job)
    models/<base>/<name>/<h>                               a model evaluated as it is (its shards' prefix only)
    results/<base>/<mix>/<h>/<task>/<lang>/seed=<s>/<h>.jsonl   one evaluation shard
    results/<base>/<mix>/<h>/<task>/<lang>/seed=<s>/<h>.samples.jsonl   its per-item samples
    sources/<kind>/<h>/<path>                              a downloaded benchmark file (the X-CSR release's dev files)
    aggregates/<study>/<h>.json                            means, intervals and tests over the shards
    reports/<study>/<h>/                                   figures and reports; aggregate.json marks it done

`<h>` is the first 16 hex digits of the SHA-256 of the identity's canonical JSON. Each identity holds the
step's code version, its config slice and the hashes of its inputs, never a path or an address.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from flows.config import DataConfig, EvaluationConfig, MixSpec, StudyConfig, config_hash
from flows.evals import TASKS

# Bump a version when equal inputs would now give different bytes, so old artifacts are not reused.
DATA_VERSION = 1  # labelled conversations and mixes
EVAL_VERSION = 1  # evaluation sets
STEP_VERSION = 1  # tuned models, shards and reports
# Bump when the same aggregate renders differently (2: fitted titles, floor markers, card tables;
# 3: the model-scale overlay and the language-agreement heatmaps).
REPORT_VERSION = 3
HASH_CHARS = 16  # 64 bits of SHA-256 in a key: plenty for a study's artifacts, short enough to read
REPORT_DONE = "aggregate.json"  # written last into a report's prefix: its presence says the report is whole
SAMPLES_SUFFIX = ".samples.jsonl"  # a shard's sample log, beside its result file
LINE_CHECK_VERSION = 1  # the line-level language check in generated replies' samples (flows.grading.check_lines)
# Options that do not change a task's items: decoding, and which other languages are evaluated beside one.
# The prompt source (`template`, `alpaca_eval_prompts`: polyglot or the paper's) does, but the task's
# `inputs` name it already (the shipped template or the paper's commit), so the keys of existing sets stay.
_NOT_ITEMS = {"languages", "sampling", "template", "alpaca_eval_prompts"}


def digest(identity: Any) -> str:
    return config_hash(identity)[:HASH_CHARS]


def keyed(prefix: str, identity: Any) -> tuple[str, str]:
    """`<prefix>/<h>` and the full SHA-256 (which the dataset manifests record)."""
    full = config_hash(identity)
    return f"{prefix}/{full[:HASH_CHARS]}", full


def mix_slug(name: str) -> str:
    """A mix name as a key segment (`leave-one-out:de` → `leave-one-out-de`)."""
    return name.replace(":", "-")


# -- datasets -------------------------------------------------------------------------------------------


def labelled_identity(source_sha256: str, lid_model: str) -> dict[str, Any]:
    return {"kind": "labelled", "version": DATA_VERSION, "source_sha256": source_sha256, "lid_model": lid_model}


def labelled_key(identity: dict[str, Any]) -> tuple[str, str]:
    return keyed("datasets/labelled", identity)


def mix_identity(
    data: DataConfig, spec: MixSpec, labelled: dict[str, Any], translator_model: str | None
) -> dict[str, Any]:
    """Only what the mix depends on: Mono does not change when K or the order does."""
    recipe = data.mixes
    identity: dict[str, Any] = {
        "kind": "mix",
        "version": DATA_VERSION,
        "labelled": config_hash(labelled),
        "lid_threshold": data.lid_threshold,
        "mix": spec.name,
        "seed": recipe.seed,
    }
    if spec.kind in ("mono", "multi"):
        identity["n"] = recipe.n
    if spec.kind == "multi":
        identity["k"] = recipe.k
        identity["languages"] = list(spec.non_english(recipe.order))
    if spec.kind in ("mono", "multi") and recipe.mono_ids:  # only when set: other mixes keep their keys
        from flows.data.mixes import mono_ids_identity

        identity["mono_ids"] = mono_ids_identity(recipe.mono_ids)
    if spec.machine_translated:
        identity["translator"] = translator_model
    if spec.kind in ("full", "leave-one-out") and not data.lid_filter_full:
        identity["lid_filter"] = False  # only when off, so the keys of filtered mixes stay as they were
    return identity


def mix_key(spec: MixSpec, identity: dict[str, Any]) -> tuple[str, str]:
    return keyed(f"datasets/{mix_slug(spec.name)}", identity)


def _mentions_path(annotation: Any) -> bool:
    return annotation is Path or any(_mentions_path(arg) for arg in typing.get_args(annotation))


def _by_inputs(info: Any) -> bool:
    """An option marked `json_schema_extra={"by_inputs": True}`: the task's `inputs` hash what it names
    (xcsqa's `source`, a hub id, a URL or a local path)."""
    return isinstance(info.json_schema_extra, dict) and bool(info.json_schema_extra.get("by_inputs"))


def item_settings(options: Any) -> dict[str, Any]:
    """The options that decide a task's items. Path options are left out: the hashes of the files they
    point to (the task's `inputs`) stand in for them, so moving the data does not rebuild an eval set;
    so are options marked `by_inputs`, whose content the inputs hash."""
    fields = type(options).model_fields
    paths = {name for name, info in fields.items() if _mentions_path(info.annotation) or _by_inputs(info)}
    return options.model_dump(mode="json", exclude=paths | _NOT_ITEMS)


def eval_set_identity(
    evaluation: EvaluationConfig, task_name: str, language: str, translator_model: str
) -> dict[str, Any]:
    options = evaluation.tasks[task_name]
    return {
        "kind": "evalset",
        "version": EVAL_VERSION,
        "task": task_name,
        "language": language,
        "settings": item_settings(options),
        "seed": evaluation.sample_seed,
        "inputs": TASKS.get(task_name).inputs(options, language, translator_model),
    }


def eval_set_key(task_name: str, language: str, identity: dict[str, Any]) -> tuple[str, str]:
    return keyed(f"evalsets/{task_name}/{language}", identity)


def source_copy_key(kind: str, identity: dict[str, Any], path: str) -> str:
    """A benchmark file downloaded once and kept in the store, so no other build or worker downloads it
    again; `identity` names the remote source (never a local path), `path` the file inside it."""
    return f"sources/{kind}/{digest(identity)}/{path}"


# -- models ---------------------------------------------------------------------------------------------


# Settings of the services, not of a model or a grade: a running service owns them (preflight checks the
# generator's against the config; docs/artifact-keys.md), so no key holds them.
_GENERATOR_SETTINGS = {"backend", "dtype", "tensor_parallel_size"}
_JUDGE_SETTINGS = {"base_url", "api_key_env", "concurrency"}


def _base_identity(cfg: StudyConfig, base_model: str, base_model_ref: str) -> dict[str, Any]:
    """A hub model by its config (not where it was downloaded to); a tiny random one by its shape and seed."""
    base = cfg.base_model(base_model)
    hub_model = base.model_dump(mode="json", exclude={"name", *_GENERATOR_SETTINGS}) if base.model else None
    return {
        "base_model": hub_model or base_model_ref,
        "tiny_random": base.tiny_random.model_dump(mode="json", exclude={"tokenizer"}) if base.tiny_random else None,
    }


def model_identity(cfg: StudyConfig, base_model: str, base_model_ref: str, mix_sha256: str) -> dict[str, Any]:
    return {
        "version": STEP_VERSION,
        **_base_identity(cfg, base_model, base_model_ref),
        "dataset_sha256": mix_sha256,
        "training": _training_identity(cfg),
    }


def _training_identity(cfg: StudyConfig) -> dict[str, Any]:
    training = cfg.training.model_dump(mode="json")
    if training.get("append_eos", True):  # only when off (the paper's texts): other models keep their keys
        training.pop("append_eos", None)
    return training


def evaluated_model_identity(
    cfg: StudyConfig, base_model: str, base_model_ref: str, adapter: dict[str, str] | None
) -> dict[str, Any]:
    """A model evaluated as it is (`evaluate_models`): its base model, and its adapter by content (each
    file's SHA-256 by its path inside the adapter; None for the bare base model), never by where it lies."""
    return {"kind": "evaluated", "version": STEP_VERSION, **_base_identity(cfg, base_model, base_model_ref),
            "adapter": adapter}  # fmt: skip


def model_key(base_model: str, mix: str, identity: dict[str, Any]) -> str:
    return f"models/{base_model}/{mix}/{digest(identity)}"


def model_record(model_key: str) -> str:
    """Written after training succeeds: its presence says the model is done."""
    return f"{model_key}/model.json"


def training_output(model_key: str) -> str:
    return f"{model_key}/job"


def training_job_key(model_key: str, store_uri: str) -> str:
    """The trainer's idempotency key. The store is part of it: the same model for another store is another job."""
    return f"{model_key.replace('/', ':')}:{digest(store_uri)}"


# -- evaluation -----------------------------------------------------------------------------------------


def shard_dir(model_key: str, task: str, language: str, seed: int) -> str:
    return f"results/{model_key.removeprefix('models/')}/{task}/{language}/seed={seed}"


def shard_identity(cfg: StudyConfig, task: str, evalset_sha256: str, seed: int) -> dict[str, Any]:
    """The items, the decoding, the seed, and for a judge-graded task the judge's provider, model and
    template (not its endpoint, key or concurrency: settings of the judge service)."""
    sampling = getattr(cfg.evaluation.tasks[task], "sampling", None)
    identity = {
        "version": STEP_VERSION,
        "evalset_sha256": evalset_sha256,
        "sampling": sampling.model_dump(mode="json") if sampling is not None else None,
        "seed": seed,
    }
    if TASKS.get(task).graded_by == "judge":
        identity["judge"] = cfg.judge.model_dump(mode="json", exclude=_JUDGE_SETTINGS)
        if identity["judge"].get("gate_language") == "target":  # the gate's comparison, named only when not the
            identity["judge"].pop("gate_language")  # default, so existing shards keep their keys
        judged = getattr(cfg.evaluation.tasks[task], "judged_sample", None)
        if judged is not None:  # the same items, but only a sample of them judged (chat)
            options = cfg.evaluation.tasks[task]
            seed = cfg.evaluation.sample_seed
            identity["judged_sample"] = {"size": judged, "method": options.sample_method, "seed": seed}
        if "paper" in (cfg.judge.template, cfg.judge.translation_template):  # the paper's messages, at its commit
            from flows.protocol.sources import load_pins

            identity["judge"]["paper_commit"] = load_pins().commit
    if TASKS.get(task).method == "generate":  # samples carry lid's line check (`lid_lines`) since version 1
        identity["line_check"] = LINE_CHECK_VERSION
    return identity


def shard_result(shard_dir: str, identity: dict[str, Any]) -> str:
    return f"{shard_dir}/{digest(identity)}.jsonl"


def shard_samples(result_key: str) -> str:
    """The shard's per-item samples: written before its result file, whose existence marks the shard done."""
    return result_key.removesuffix(".jsonl") + SAMPLES_SUFFIX


def is_shard_samples(key: str) -> bool:
    return key.startswith("results/") and key.endswith(SAMPLES_SUFFIX)


def aggregate_key(cfg: StudyConfig, shard_keys: list[str]) -> str:
    """Over the shards' keys (which hash their inputs) and the statistics settings."""
    return f"aggregates/{cfg.name}/{digest([sorted(shard_keys), cfg.report.model_dump(mode='json')])}.json"


def report_prefix(
    cfg: StudyConfig,
    aggregate_key: str,
    model_keys: list[str],
    dataset_keys: list[str],
    compared_aggregate_key: str | None = None,
) -> str:
    """`compared_aggregate_key`: the other study's aggregate that `report.compare_with` joins in, so that a
    rerun of that study makes a new report (None: left out, so reports without one keep their keys)."""
    identity = [aggregate_key, cfg.model_dump(mode="json"), model_keys, dataset_keys]
    if compared_aggregate_key is not None:
        identity.append(compared_aggregate_key)
    return f"reports/{cfg.name}/{digest([STEP_VERSION, REPORT_VERSION, identity])}"
