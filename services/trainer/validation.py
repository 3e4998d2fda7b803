"""Submit-time checks: everything a worker would trip over later is refused before any work starts.

Each check raises a domain error naming the request field (`spec.base_model`, `spec.output_uri`, …), which
the runtime maps to INVALID_ARGUMENT or NOT_FOUND.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import InvalidArgument, NotFound, PolyglotError
from services.common.store import open_store
from services.trainer.dataset import DatasetManifest, validate_dataset
from services.trainer.schema import JobSpec

PROBE_PREFIX = "_polyglot_write_probe"


@dataclass(frozen=True)
class BaseModelRef:
    """A resolved base model: `kind` is `local` (a directory), `store` (an artifact URI) or `hub` (a hub id)."""

    kind: str
    ref: str


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def resolve_base_model(ref: str, *, field: str = "spec.base_model") -> BaseModelRef:
    """Where the base model comes from; it must at least have a `config.json` we can see from here."""
    ref = ref.strip()
    if not ref:
        raise InvalidArgument("must name a base model (hub id, local directory or artifact URI)", field=field)
    if "://" in ref:
        try:
            store = open_store(ref)
            found = store.exists("config.json")
        except PolyglotError as exc:
            raise InvalidArgument(f"{ref}: {exc.message}", field=field) from None
        if not found:
            raise NotFound(f"no model at {ref} (no config.json under it)", field=field)
        return BaseModelRef("store", ref)
    path = Path(ref).expanduser()
    if path.is_absolute() or ref.startswith((".", "~")) or path.exists():
        if not path.is_dir():
            raise NotFound(f"no model directory {ref}", field=field)
        if not (path / "config.json").is_file():
            raise InvalidArgument(f"{ref} is not a model directory (no config.json)", field=field)
        return BaseModelRef("local", str(path.resolve()))
    from huggingface_hub import file_exists, try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(ref)
    except HFValidationError as exc:
        raise InvalidArgument(f"unknown base model {ref!r}: {exc}", field=field) from None
    cached = try_to_load_from_cache(ref, "config.json")
    if isinstance(cached, str):
        return BaseModelRef("hub", ref)
    if _offline():
        raise InvalidArgument(
            f"unknown base model {ref!r}: not a local directory or artifact URI, and not in the Hugging Face "
            "cache (offline mode)",
            field=field,
        )
    try:
        known = file_exists(ref, "config.json")
    except Exception as exc:  # network, auth: the hub's own error types vary by version
        raise InvalidArgument(f"cannot resolve base model {ref!r} on the hub: {exc}", field=field) from None
    if not known:
        raise InvalidArgument(f"unknown base model {ref!r}: no such model on the hub", field=field)
    return BaseModelRef("hub", ref)


def check_output_writable(uri: str, *, field: str = "spec.output_uri") -> None:
    """Write and delete a probe object under `uri`, so a job never trains for hours into a dead end."""
    if not uri.strip():
        raise InvalidArgument("must be an artifact URI prefix (s3://bucket/prefix or file:///dir)", field=field)
    try:
        store = open_store(uri)
        key = f"{PROBE_PREFIX}/{uuid.uuid4().hex}"
        store.put_bytes(key, b"")
        store.delete(key)
    except PolyglotError as exc:
        raise InvalidArgument(f"{uri} is not writable: {exc.message}", field=field) from None
    except OSError as exc:
        raise InvalidArgument(f"{uri} is not writable: {exc.strerror or exc}", field=field) from None


def validate_spec(spec: JobSpec, *, cuda_devices: int | None = None) -> DatasetManifest:
    """All submit-time checks, cheapest first; returns the dataset's manifest for the job record."""
    if spec.num_devices > 1:
        error = spec.recipe.accumulation_field_error(spec.num_devices)
        if error:
            raise error
        if cuda_devices is not None and spec.num_devices > cuda_devices:
            raise InvalidArgument(
                f"asks for {spec.num_devices} devices but this trainer has {cuda_devices} GPU(s)",
                field="spec.num_devices",
            )
    resolve_base_model(spec.base_model)
    manifest = validate_dataset(spec.dataset_uri)
    check_output_writable(spec.output_uri)
    return manifest
