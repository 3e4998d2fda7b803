"""Protocol profiles: named sets of element values (`paper`, `polyglot`) that a study config starts from.

A profile is data, `flows/config/profiles/<name>.yaml`, nested like a study config. The loader fills every
key the config leaves out with the profile's value before validation, so a config's own values always win:

    protocol: {profile: paper}      # configs/paper-*.yaml
    training: {max_steps: 5}        # still the config's own: the profile only fills what is missing

Under `evaluation.tasks` a profile only fills the tasks the config runs: it never adds a task. Which
elements a profile sets, and the paper's value of each, are listed in `flows/protocol/elements.yaml`
(`polyglot fidelity CONFIG` prints them side by side).
"""

from __future__ import annotations

import copy
import functools
import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from services.common.config.types import OutputPath, Section

PROFILES = ("paper", "polyglot")
DEFAULT_PROFILE = "polyglot"
SOURCES_ENV = "POLYGLOT_PAPER_SOURCES"
_TASKS = ("evaluation", "tasks")


def default_sources() -> Path:
    """Where `polyglot protocol fetch` caches the paper's sources: $POLYGLOT_PAPER_SOURCES, else the user cache."""
    configured = os.environ.get(SOURCES_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (cache / "polyglot" / "paper-sources").resolve()


class ProtocolConfig(Section):
    """Which protocol the study follows: the paper's exactly, or Polyglot's own choices."""

    profile: Literal["paper", "polyglot"] = Field(
        DEFAULT_PROFILE,
        description="Element values a config starts from (flows/config/profiles/<name>.yaml): `paper` reproduces "
        "the paper's protocol point by point, `polyglot` uses Polyglot's own choices. The config's own values win.",
    )
    sources: OutputPath = Field(
        default_factory=default_sources,
        description=f"Directory of the paper's fetched sources (`polyglot protocol fetch`) or of an unpacked offline "
        f"bundle; default ${SOURCES_ENV}, else ~/.cache/polyglot/paper-sources. Read by the `paper` profile's texts.",
    )


@functools.cache
def _load(name: str) -> dict[str, Any]:
    text = resources.files("flows.config.profiles").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def profile_values(name: str) -> dict[str, Any]:
    """The nested element values of profile `name` (a copy); KeyError for an unknown profile."""
    if name not in PROFILES:
        raise KeyError(name)
    return copy.deepcopy(_load(name))


def profile_file(name: str) -> str:
    """The profile's file, relative to the repository root (for the fidelity table's `set in` column)."""
    return f"flows/config/profiles/{name}.yaml"


def profile_name(data: dict[str, Any]) -> str | None:
    """The profile a parsed config asks for; None when the value is not a known profile (validation says so)."""
    protocol = data.get("protocol")
    name = protocol.get("profile", DEFAULT_PROFILE) if isinstance(protocol, dict) else DEFAULT_PROFILE
    if protocol is not None and not isinstance(protocol, dict):
        return None
    return name if name in PROFILES else None


def apply_profile(data: dict[str, Any]) -> set[tuple[str, ...]]:
    """Fill `data` (a parsed config, in place) with its profile's values where it sets none.

    Returns the dotted paths (as tuples) whose value came from the profile, so errors and the fidelity
    table can say where a value was set.
    """
    name = profile_name(data)
    if name is None:
        return set()
    filled: set[tuple[str, ...]] = set()
    _fill(data, profile_values(name), (), filled)
    return filled


def _fill(target: dict[str, Any], values: dict[str, Any], path: tuple[str, ...], filled: set[tuple[str, ...]]) -> None:
    for key, value in values.items():
        here = (*path, key)
        if path == _TASKS:
            if key not in target:
                continue  # a profile never adds a task
            if target[key] is None:
                target[key] = {}  # `xnli:` alone runs the task with its defaults: the profile's, here
        if key not in target and isinstance(value, dict) and value:
            target[key] = {}  # filled key by key, so the tasks rule holds below; dropped again if nothing lands
            _fill(target[key], value, here, filled)
            if not target[key]:
                del target[key]
        elif key not in target:
            target[key] = copy.deepcopy(value)
            filled.add(here)
        elif isinstance(target[key], dict) and isinstance(value, dict):
            _fill(target[key], value, here, filled)
