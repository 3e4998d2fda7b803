"""Does what runs match what the config says? The service-owned fields, checked against running services.

A study's config names its base model and the generator's backend, but services that already run (a
cluster, `study run --no-services`) were started with their own settings, and the artifact keys do not
record those settings (docs/artifact-keys.md). So before any work, the study asks the generator what it
serves. `polyglot config check` and loading already refuse an unknown judge provider (the judge has no
RPC that lists its providers: its registry is checked instead), and the generator does not report its
dtype, so neither is asked here.
"""

from __future__ import annotations

import os
from typing import Any

from flows.config import StudyConfig
from services.common.config.types import looks_like_path
from services.common.errors import PolyglotError

LIST_TIMEOUT_S = 30.0


def _same_model(served: str, expected: str) -> bool:
    # A hub id compares as text; a directory by its normalised path (the generator reports what it was given).
    if looks_like_path(served) and looks_like_path(expected):
        return os.path.normpath(os.path.expanduser(served)) == os.path.normpath(os.path.expanduser(expected))
    return served == expected


def service_mismatches(cfg: StudyConfig, clients: Any, refs: dict[str, str] | None = None) -> list[str]:
    """One line per difference between the config and the running services, each saying how to fix it.

    `clients` is a `flows.clients.Clients` (only its generator is asked). `refs` maps a base model's name
    to what the generator should load when that is not the config's `model` (a tiny random model's
    materialised directory, as `flows.local.materialise_models` returns); a tiny random model without a
    ref is not compared.
    """
    address = cfg.services.generator
    try:
        listed = clients.generator.list_models(timeout=LIST_TIMEOUT_S)
    except PolyglotError as exc:
        return [f"generator at {address}: cannot list its models ({exc}); start it, or fix services.generator"]
    base = next((entry for entry in listed.models if entry.kind == "base"), None)
    if base is None:
        return [f"generator at {address} serves no base model; start it with --model (POLYGLOT_GENERATOR_MODEL)"]
    problems = []
    for model in cfg.base_models:
        expected = (refs or {}).get(model.name) or model.model
        if expected is not None and not _same_model(base.name, expected):
            problems.append(
                f"base model {model.name!r}: the config's model is {expected} but the generator at {address} "
                f"serves {base.name}; start the generator with --model {expected}, or point services.generator "
                "at one that serves it"
            )
        if base.backend and base.backend != model.backend:
            problems.append(
                f"base model {model.name!r}: the config's backend is {model.backend} but the generator at "
                f"{address} runs {base.backend}; set base_models[].backend: {base.backend}, or restart the "
                f"generator with --backend {model.backend}"
            )
    problems += _judge_model_served(cfg, listed.models, address)
    problems += _lid_model_served(cfg, clients)
    return problems


def _lid_model_served(cfg: StudyConfig, clients: Any) -> list[str]:
    """`lid.model: openlid` (the paper's) needs a lid service that serves OpenLID; a model pinned by `lid.sha256`
    is compared by its SHA-256. The default (lid.176, unpinned) is not checked: a cluster's lid owns its model."""
    expected = "openlid" if cfg.lid.model == "openlid" else None
    if expected is None and cfg.lid.sha256 is None:
        return []
    address = cfg.services.lid
    try:
        info = clients.lid.model_info(timeout=LIST_TIMEOUT_S)
    except PolyglotError as exc:
        return [f"lid at {address}: cannot read its model ({exc}); start it, or fix services.lid"]
    if expected is not None and info.label_scheme != expected:
        return [
            f"lid.model is {cfg.lid.model} but the lid service at {address} serves a {info.label_scheme} model "
            f"({info.path}); start it with POLYGLOT_LID_MODEL naming the model, or set lid.model"
        ]
    if cfg.lid.sha256 is not None and info.sha256 and info.sha256 != cfg.lid.sha256:
        return [f"lid.sha256 is {cfg.lid.sha256} but the lid service at {address} serves {info.sha256}"]
    return []


def _judge_model_served(cfg: StudyConfig, served: list[Any], address: str) -> list[str]:
    """With the `generator` provider the judge asks the generator for `judge.model` by the name the generator
    knows: "base" (or the base model as it lists it) or an adapter it has loaded. The config's own name for
    a base model is not one of those, and would fail every grade with NOT_FOUND."""
    if cfg.judge.provider != "generator" or cfg.judge.model in ("", "base"):
        return []
    if any(entry.name == cfg.judge.model for entry in served):
        return []
    return [
        f"judge.model {cfg.judge.model!r}: the generator at {address} serves no model of that name; with "
        'provider generator use judge.model: base (the base model) or the name of an adapter it has loaded'
    ]
