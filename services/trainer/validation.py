"""Submit-time checks: everything a worker would trip over later is refused before any work starts.

Each check raises a domain error naming the request field (`spec.base_model`, `spec.output_uri`,
`spec.hyperparameters.target_modules`, …), which the runtime maps to INVALID_ARGUMENT or NOT_FOUND; what the
file system refuses about a name (too long) is INVALID_ARGUMENT too, never INTERNAL.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import InvalidArgument, NotFound, PolyglotError
from services.common.store import StoreRoots, check_write_once, open_store
from services.trainer.dataset import DatasetManifest, validate_dataset
from services.trainer.recipe import HYPERPARAMETERS_FIELD
from services.trainer.schema import JobSpec

log = logging.getLogger("polyglot.trainer")
PROBE_PREFIX = "_polyglot_write_probe"
ALL_LINEAR = "all-linear"  # PEFT's name for every linear layer but the output head
MAX_REF_LENGTH = 1024  # a hub id is at most 96 characters, a path at most PATH_MAX (4096) on Linux


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
        except OSError as exc:  # a file:// path the file system refuses (ENAMETOOLONG)
            raise InvalidArgument(f"{ref}: {exc.strerror or exc}", field=field) from None
        if not found:
            raise NotFound(f"no model at {ref} (no config.json under it)", field=field)
        return BaseModelRef("store", ref)
    if len(ref) > MAX_REF_LENGTH:
        raise InvalidArgument(f"is {len(ref)} characters long; at most {MAX_REF_LENGTH}", field=field)
    try:
        local = _local_model(ref, field)
    except OSError as exc:  # a name the file system refuses (ENAMETOOLONG, EACCES): no model we can read
        raise InvalidArgument(f"not a readable path: {exc.strerror or exc}", field=field) from None
    if local:
        return local
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


def _local_model(ref: str, field: str) -> BaseModelRef | None:
    path = Path(ref).expanduser()
    if not (path.is_absolute() or ref.startswith((".", "~")) or path.exists()):
        return None
    if not path.is_dir():
        raise NotFound(f"no model directory {ref}", field=field)
    if not (path / "config.json").is_file():
        raise InvalidArgument(f"{ref} is not a model directory (no config.json)", field=field)
    return BaseModelRef("local", str(path.resolve()))


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


TARGET_MODULES_FIELD = f"{HYPERPARAMETERS_FIELD}.target_modules"


def check_target_modules(modules: str | list[str], base: BaseModelRef, *, field: str = TARGET_MODULES_FIELD) -> None:
    """Refuse target modules the worker's PEFT could not adapt in the base model, before any work starts.

    On the model built from its `config.json` on the meta device (no weights, no memory): every name of a
    list must end some module's name, and PEFT's own injection must accept them (a single string is PEFT's
    regular expression). `all-linear` always fits. A model transformers cannot build from its config here
    (custom code) is left to the worker."""
    if modules == ALL_LINEAR:
        return
    names = [modules] if isinstance(modules, str) else list(modules)
    if not names or any(not name.strip() for name in names):
        raise InvalidArgument(f"{modules!r}: name at least one module (or 'all-linear'), none empty", field=field)
    if isinstance(modules, str):
        try:
            re.compile(modules)
        except re.error as exc:  # PEFT reads a single string as a regular expression over module names
            raise InvalidArgument(f"{modules!r} is not a regular expression: {exc}", field=field) from None
    model = _meta_model(base)
    if model is None:
        return
    if isinstance(modules, list):  # PEFT only refuses a list none of whose names match
        found = [name for name, _ in model.named_modules()]
        unknown = [key for key in modules if not any(n == key or n.endswith(f".{key}") for n in found)]
        if unknown:
            raise InvalidArgument(
                f"no module {unknown[0]!r} in {base.ref}; its linear layers: {', '.join(_linear_names(model))}",
                field=field,
            )
    from peft import LoraConfig, inject_adapter_in_model

    try:
        with _torch().device("meta"):
            inject_adapter_in_model(LoraConfig(r=1, target_modules=modules), model)
    except (ValueError, TypeError) as exc:
        reason = "names a module PEFT cannot adapt" if "not supported" in str(exc) else "matches no module"
        raise InvalidArgument(
            f"{modules!r} {reason} of {base.ref}; its linear layers: {', '.join(_linear_names(model))}", field=field
        ) from None


def _torch():
    import torch

    return torch


def _linear_names(model) -> list[str]:
    linear = _torch().nn.Linear
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, linear)})


def _meta_model(base: BaseModelRef):
    """The base model's architecture without weights (meta device), or None if transformers cannot build it."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with tempfile.TemporaryDirectory(prefix="polyglot-config-") as tmp:
        if base.kind == "local":
            config_dir = base.ref
        elif base.kind == "store":
            (Path(tmp) / "config.json").write_bytes(open_store(base.ref).get_bytes("config.json"))
            config_dir = tmp
        else:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(base.ref, "config.json")
            if not isinstance(cached, str):
                return None
            config_dir = str(Path(cached).parent)
        try:
            config = AutoConfig.from_pretrained(config_dir)
            with _torch().device("meta"):
                return AutoModelForCausalLM.from_config(config)
        except Exception as exc:  # unknown architecture, remote code: the worker will say
            log.warning("cannot build %s on the meta device to check its target modules: %s", base.ref, exc)
            return None


def check_locations(spec: JobSpec, roots: StoreRoots) -> None:
    """Every URI of the spec within the service's roots (PERMISSION_DENIED naming the field otherwise), and
    the output prefix no finished artifact's (ALREADY_EXISTS): a job never overwrites a study's adapter."""
    if "://" in spec.base_model:
        roots.check(spec.base_model.strip(), field="spec.base_model")
    roots.check(spec.dataset_uri, field="spec.dataset_uri")
    try:
        check_write_once(spec.output_uri, field="spec.output_uri", roots=roots)
    except OSError as exc:  # a file:// path the file system refuses (ENAMETOOLONG)
        raise InvalidArgument(f"{spec.output_uri}: {exc.strerror or exc}", field="spec.output_uri") from None


def validate_spec(
    spec: JobSpec, *, cuda_devices: int | None = None, roots: StoreRoots | None = None
) -> DatasetManifest:
    """All submit-time checks, cheapest first; returns the dataset's manifest for the job record. With
    `roots` (the service's), the spec's URIs are confined to them and its output prefix must be new."""
    if roots is not None:
        check_locations(spec, roots)
    if spec.num_devices > 1:
        error = spec.recipe.accumulation_field_error(spec.num_devices)
        if error:
            raise error
        if cuda_devices is not None and spec.num_devices > cuda_devices:
            raise InvalidArgument(
                f"asks for {spec.num_devices} devices but this trainer has {cuda_devices} GPU(s)",
                field="spec.num_devices",
            )
    base = resolve_base_model(spec.base_model)
    try:
        manifest = validate_dataset(spec.dataset_uri)
    except OSError as exc:  # a file:// path the file system refuses (ENAMETOOLONG, EACCES)
        message = f"cannot read {spec.dataset_uri}: {exc.strerror or exc}"
        raise InvalidArgument(message, field="spec.dataset_uri") from None
    check_output_writable(spec.output_uri)
    check_target_modules(spec.recipe.lora_target_modules, base)
    return manifest
