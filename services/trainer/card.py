"""The training card: one JSON document that says exactly which data, recipe, code and libraries made an adapter.

Written next to the adapter (`<output_uri>/card.json`), so every later number can be traced back to its run.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from services.trainer.dataset import DatasetManifest
from services.trainer.schema import JobSpec

CARD_VERSION = 1
LIBRARIES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "tokenizers", "safetensors")
REPO_ROOT = Path(__file__).resolve().parents[2]


@cache
def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@cache
def code_version() -> dict[str, Any]:
    """The package version and, where known, the git commit: `POLYGLOT_GIT_SHA` (set in images) or the
    checkout's HEAD, with `dirty` when tracked files differ from it."""
    try:
        package = importlib.metadata.version("polyglot")
    except importlib.metadata.PackageNotFoundError:
        package = "unknown"
    version: dict[str, Any] = {"package": package, "git_sha": os.environ.get("POLYGLOT_GIT_SHA") or None}
    if version["git_sha"] is None and (REPO_ROOT / ".git").exists():
        try:
            run = lambda *args: subprocess.run(  # noqa: E731
                ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            version["git_sha"] = run("rev-parse", "HEAD")
            version["dirty"] = bool(run("status", "--porcelain", "--untracked-files=no"))
        except (OSError, subprocess.SubprocessError):
            pass
    return version


def loss_curve(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per-logging-step training loss and learning rate from `Trainer.state.log_history` (which a resumed
    run restores from its checkpoint, so the curve spans every attempt)."""
    curve = []
    for entry in log_history:
        if "loss" in entry and "step" in entry:
            curve.append(
                {
                    "step": int(entry["step"]),
                    "loss": float(entry["loss"]),
                    "learning_rate": float(entry.get("learning_rate", 0.0)),
                    "epoch": float(entry.get("epoch", 0.0)),
                }
            )
    return curve


def build_card(
    *,
    job_id: str,
    spec: JobSpec,
    fingerprint: str,
    dataset: DatasetManifest,
    base_model: dict[str, str],
    log_history: list[dict[str, Any]],
    wall_seconds: float,
    attempts: int,
    resumed_from_step: int | None,
    devices: dict[str, Any],
    outputs: dict[str, dict[str, str]],
    tokens_seen: int,
    global_step: int,
) -> dict[str, Any]:
    curve = loss_curve(log_history)
    recipe = spec.recipe
    return {
        "card_version": CARD_VERSION,
        "job_id": job_id,
        "spec_fingerprint": fingerprint,
        "base_model": base_model,
        # The data flow's manifest hash when the dataset has one, else the jsonl's own content hash.
        "dataset_hash": dataset.identity,
        "dataset": {
            "uri": dataset.uri,
            "sha256": dataset.sha256,
            "manifest_sha256": dataset.manifest_sha256 or None,
            "rows": dataset.rows,
            "size_bytes": dataset.size_bytes,
        },
        "hyperparameters": {
            **recipe.model_dump(mode="json"),
            "gradient_accumulation_steps": recipe.gradient_accumulation_steps(spec.num_devices),
            "num_devices": spec.num_devices,
            "loss": "causal LM loss on the whole Guanaco text (every turn)",
            "pad_token": "eos",
        },
        "devices": devices,
        "code_version": code_version(),
        "library_versions": library_versions(),
        "wall_time_seconds": round(wall_seconds, 3),
        "attempts": attempts,
        "resumed_from_step": resumed_from_step,
        "global_step": global_step,
        "tokens_seen": tokens_seen,
        "initial_loss": curve[0]["loss"] if curve else None,
        "final_loss": curve[-1]["loss"] if curve else None,
        "loss_curve": curve,
        "outputs": outputs,
        "labels": dict(spec.labels),
    }
