"""Field types the study config shares: registry-checked language codes, paths, addresses, presets.

Relative paths in a study file are resolved against the file's directory: the loader passes it as
the validation context `base_dir`; without one (a config built in Python) the working directory is
the base. `${VAR}` and `${VAR:-default}` in paths are replaced from the environment first, so a
config can say `${POLYGLOT_SHARED_DIR:-../../shared}/data/...`. Whether a path exists is checked only when
the context asks (`check_paths`): a config may be planned on one machine and run on another.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationInfo

from services.common import languages
from services.common.errors import InvalidArgument
from services.common.presets import SamplingParams, get_preset


class Section(BaseModel):
    """Base of every config section: unknown keys are errors (typos surface), values are immutable, and
    floats are finite (inf or NaN in a recipe would pass `gt=0`, then fail the strict JSON every record is
    written as, or the training it configures)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False, allow_inf_nan=False)


_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name) or default
        if value is None:
            raise ValueError(f"environment variable {name} is not set and ${{{name}}} has no :-default")
        return value

    return _ENV_VAR.sub(substitute, text)


def base_dir(info: ValidationInfo) -> Path:
    context = info.context or {}
    return Path(context.get("base_dir") or Path.cwd())


def resolve_path(value: str | Path, info: ValidationInfo) -> Path:
    path = Path(expand_env(str(value))).expanduser()
    return path if path.is_absolute() else (base_dir(info) / path).resolve()


def _existing(path: Path, info: ValidationInfo) -> Path:
    """With `check_paths` in the context (`polyglot config check`, `study run`), a path the study reads
    must exist here; without it (a plan, a config meant for another machine) it is only resolved."""
    if (info.context or {}).get("check_paths") and not path.exists():
        raise ValueError(f"no such file or directory: {path}")
    return path


def looks_like_path(value: str) -> bool:
    """The rule that tells a local path from a hub id (`org/name`): paths start with `.`, `/`, `~` or `$`."""
    return value.startswith((".", "/", "~", "$"))


def _hub_id_or_path(value: str, info: ValidationInfo) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return str(_existing(resolve_path(value, info), info)) if looks_like_path(value) else value


def _language_code(value: str) -> str:
    try:
        return languages.get(value).code
    except InvalidArgument as exc:
        raise ValueError(exc.message) from None


def _store_uri(value: str, info: ValidationInfo) -> str:
    """`s3://bucket[/prefix]` as is; `file://<path>` with the path made absolute (`file:///abs/path`)."""
    if value.startswith("s3://"):
        if not value[len("s3://") :].strip("/"):
            raise ValueError("an s3:// URI needs a bucket: s3://bucket[/prefix]")
        return value.rstrip("/")
    if value.startswith("file://"):
        return resolve_path(value[len("file://") :] or ".", info).as_uri()
    raise ValueError(f"artifact store URI must start with s3:// or file://, got {value!r}")


_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def _host(value: str, whole: str) -> str:
    match = _HOST_PORT.match(value)
    if not match:
        raise ValueError(f"expected host:port (e.g. 127.0.0.1:50051), got {whole!r}")
    if not 0 < int(match.group(2)) < 65536:
        raise ValueError(f"port {match.group(2)} of {whole!r} is out of range: ports are 1..65535")
    return match.group(1)


_SCHEMES = ("dns:", "unix:", "ipv4:", "ipv6:")


def grpc_target(address: str) -> str:
    """The gRPC target of an address: a list of replicas (`127.0.0.1:5001,127.0.0.1:5002`) becomes gRPC's
    static `ipv4:`/`ipv6:` target, which takes a comma-separated list; anything else is a target already."""
    if address.startswith(_SCHEMES) or "," not in address:
        return address
    return f"{'ipv6' if address.startswith('[') else 'ipv4'}:{address}"


def parse_address(value: str) -> str:
    """`host:port`; a list of replicas `ip:port,ip:port` (returned as the `ipv4:`/`ipv6:` target that names
    them); or a gRPC target with a scheme (`dns:///svc.ns:50051`, which resolves to every pod of a headless
    Service, `ipv4:10.0.0.1:50051,10.0.0.2:50051`, `unix:/run/x.sock`). The CLI's address arguments use it
    too, so a bad one is refused the same way everywhere."""
    if value.startswith(_SCHEMES):
        return value
    parts = value.split(",")
    hosts = [_host(part.strip(), value) for part in parts]
    if len(parts) == 1:
        return value
    # gRPC lists addresses only in its static resolvers, which take IP literals: a name that stands for
    # several replicas is a DNS name (`dns:///name:port`, e.g. a headless Service).
    if not (all(_IPV4.match(h) for h in hosts) or all(h.startswith("[") for h in hosts)):
        raise ValueError(
            f"a list of replicas takes IP addresses of one family (127.0.0.1:5001,127.0.0.1:5002), got {value!r}; "
            "for a name that resolves to several replicas use dns:///name:port"
        )
    return grpc_target(",".join(part.strip() for part in parts))


def sampling_field(default_preset: str):
    """A validator that turns `chat` or `{preset: chat, max_tokens: 128}` into full SamplingParams.

    Overrides without a `preset` key start from `default_preset`, the task's own decoding.
    Storing the full parameters (not just a name) means a changed preset changes the config hash.
    """

    def to_params(value: Any) -> Any:
        if isinstance(value, SamplingParams):
            return value
        try:
            if isinstance(value, str):
                return get_preset(value)
            if isinstance(value, dict):
                overrides = dict(value)
                base = get_preset(overrides.pop("preset", default_preset))
                return {**base.model_dump(), **overrides}
        except InvalidArgument as exc:
            raise ValueError(exc.message) from None
        return value

    return BeforeValidator(to_params)


LanguageCode = Annotated[str, AfterValidator(_language_code)]
LocalPath = Annotated[Path, AfterValidator(resolve_path), AfterValidator(_existing)]  # a file or directory read
OutputPath = Annotated[Path, AfterValidator(resolve_path)]  # where something is written; need not exist yet
HubIdOrPath = Annotated[str, AfterValidator(_hub_id_or_path)]
StoreUri = Annotated[str, AfterValidator(_store_uri)]
Address = Annotated[str, AfterValidator(parse_address)]


def _slug(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", value):
        raise ValueError(f"{value!r} is not a valid name: use lower-case letters, digits, '.', '_' and '-' (max 63)")
    return value


Slug = Annotated[str, AfterValidator(_slug)]


def unique(values: list[Any], what: str) -> list[Any]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)
    return values
