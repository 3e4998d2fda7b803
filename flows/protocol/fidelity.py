"""`polyglot fidelity CONFIG`: every protocol element, the paper's value beside this config's, and where it is set.

The elements are data (`flows/protocol/elements.yaml`); each row reads the element's path in the resolved
config, so the table cannot drift from the code. A value is set by the config file (`file:line`), an
override (`--set`), the config's protocol profile (`flows/config/profiles/<name>.yaml`) or the schema's
default. The same table goes into the report's appendix, and docs/fidelity/<config>.md holds it for each
paper config (regenerate: `.venv/bin/python -m flows.protocol.fidelity --write-docs`).

    polyglot fidelity configs/paper-llama2-7b.yaml
    polyglot fidelity configs/paper-llama2-7b.yaml --set protocol.profile=polyglot
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from flows.config import StudyConfig, load_config
from flows.config.loader import PathKey, format_path, parse_yaml
from flows.config.profile import apply_profile, profile_file, profile_values

MATCH, DEVIATION, NOT_APPLICABLE = "match", "deviation", "n/a"
_TASKS = ("evaluation", "tasks")
PAPER_CONFIGS = ("paper-llama2-7b", "paper-mt", "paper-llama2-70b", "paper-falcon-7b")
DOCS_DIR = Path("docs/fidelity")


class Element(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    path: str = Field(description="Dotted config path.")
    paper: Any = Field(description="The paper's value; a mapping is compared key by key.")
    paper_source: str = Field(description="Where the paper or its code sets it (a file or section).")
    reason: str = Field("", description="Why Polyglot's own profile deviates.")
    configs: list[str] | None = Field(None, description="Study names the element applies to; null = all.")


@functools.cache
def elements() -> tuple[Element, ...]:
    """The declared elements, in file order; names are unique."""
    text = resources.files("flows.protocol").joinpath("elements.yaml").read_text(encoding="utf-8")
    declared = tuple(Element.model_validate(entry) for entry in yaml.safe_load(text) or [])
    names = [e.name for e in declared]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"flows/protocol/elements.yaml: duplicate element names {duplicates}")
    return declared


@dataclass(frozen=True)
class Row:
    element: Element
    value: Any  # this config's value (JSON-shaped); None when not applicable
    set_in: str
    status: str  # match | deviation | n/a

    @property
    def reason(self) -> str:
        if self.status == DEVIATION:
            return self.element.reason or "differs from the paper"
        return ""


def _plain(value: Any) -> Any:
    """JSON-shaped, so tuples compare with lists and models with mappings."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.loads(json.dumps(value, default=str))


def matches(paper: Any, value: Any) -> bool:
    """Equal; for a mapping, every key the paper states has the paper's value (others are not elements)."""
    paper, value = _plain(paper), _plain(value)
    if isinstance(paper, dict):
        return isinstance(value, dict) and all(k in value and matches(v, value[k]) for k, v in paper.items())
    return paper == value


_MISSING = object()


def _lookup(data: Any, keys: PathKey) -> Any:
    for key in keys:
        if isinstance(data, Mapping) and key in data:
            data = data[key]
        else:
            return _MISSING
    return data


def _config_value(cfg: StudyConfig, keys: PathKey) -> Any:
    if keys[: len(_TASKS)] == _TASKS:
        task = cfg.evaluation.tasks.get(keys[len(_TASKS)])
        return _MISSING if task is None else _lookup(task.model_dump(mode="json"), keys[len(_TASKS) + 1 :])
    return _lookup(cfg.model_dump(mode="json"), keys)


@dataclass(frozen=True)
class Provenance:
    """Where each value of one config came from: its file's lines, the overrides, the profile's fills."""

    source: str
    profile: str
    lines: dict[PathKey, int]
    overridden: set[PathKey]
    filled: set[PathKey]
    merged: dict[str, Any]  # the file's data after the overrides and the profile

    def where(self, keys: PathKey) -> str:
        """The innermost place that set a value at `keys` or a scalar above it (a preset name, say)."""
        for end in range(len(keys), 0, -1):
            prefix = keys[:end]
            if end < len(keys) and isinstance(_lookup(self.merged, prefix), dict):
                continue  # a mapping above the value: it is set (or not) further down
            if prefix in self.overridden:
                return "--set"
            if prefix in self.filled:
                return profile_file(self.profile)
            if prefix in self.lines:
                return f"{self.source}:{self.lines[prefix]}"
        return "default (schema)"

    def where_all(self, keys: PathKey, paper: Any) -> str:
        """For a mapping element, each compared key's place (distinct, in order); else `where(keys)`."""
        if not isinstance(paper, dict):
            return self.where(keys)
        places = [self.where((*keys, key)) for key in paper]
        return ", ".join(dict.fromkeys(places))


def provenance(path: str | Path, overrides: Mapping[str, Any] | None, cfg: StudyConfig) -> Provenance:
    """Re-trace the loader's steps on the raw file to learn which values the file, the overrides and the
    profile each set (the validated config no longer knows)."""
    text = Path(path).read_text(encoding="utf-8")
    data, lines = parse_yaml(text, str(path))
    merged = copy.deepcopy(data)
    for dotted, value in (overrides or {}).items():  # an override wins over the file: its value is the config's
        *parents, last = dotted.split(".")
        target = merged
        for key in parents:
            target = target.setdefault(key, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            target[last] = yaml.safe_load(value) if isinstance(value, str) else value
    filled = apply_profile(merged)
    overridden = {tuple(key.split(".")) for key in (overrides or {})}
    return Provenance(str(path), cfg.protocol.profile, lines, overridden, filled, merged)


@dataclass(frozen=True)
class ProfileProvenance:
    """For a config known only resolved (the report): a value equal to its profile's is credited to the
    profile, any other to the config."""

    cfg: StudyConfig

    def where(self, keys: PathKey) -> str:
        profile = self.cfg.protocol.profile
        expected = _lookup(profile_values(profile), keys)
        settled = expected is not _MISSING and not isinstance(expected, dict)
        if settled and matches(expected, _config_value(self.cfg, keys)):
            return profile_file(profile)
        return "the study config"

    def where_all(self, keys: PathKey, paper: Any) -> str:
        if not isinstance(paper, dict):
            return self.where(keys)
        return ", ".join(dict.fromkeys(self.where((*keys, key)) for key in paper))


def report_markdown(cfg: StudyConfig) -> str:
    """The table for the report's appendix."""
    return markdown(cfg, rows(cfg, ProfileProvenance(cfg)))


def rows(cfg: StudyConfig, where: Provenance | ProfileProvenance) -> list[Row]:
    """One row per element, in declaration order."""
    out = []
    for element in elements():
        keys = tuple(element.path.split("."))
        value = _config_value(cfg, keys)
        if element.configs is not None and cfg.name not in element.configs:
            out.append(Row(element, None, f"(applies to {', '.join(element.configs)})", NOT_APPLICABLE))
        elif value is _MISSING and keys[: len(_TASKS)] == _TASKS and keys[len(_TASKS)] not in cfg.evaluation.tasks:
            out.append(Row(element, None, f"(task {keys[len(_TASKS)]} not run)", NOT_APPLICABLE))
        elif value is _MISSING:
            out.append(Row(element, None, f"no field {format_path(keys)} in the config schema", DEVIATION))
        else:
            status = MATCH if matches(element.paper, value) else DEVIATION
            shown = _plain(value)
            if isinstance(element.paper, dict) and isinstance(shown, dict):  # only the keys the element compares
                shown = {key: shown.get(key) for key in element.paper}
            out.append(Row(element, shown, where.where_all(keys, element.paper), status))
    return out


def _cell(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return f"`{text}`".replace("|", "\\|")


def markdown(cfg: StudyConfig, table: list[Row]) -> str:
    """The fidelity table of one config, with a one-line summary above it."""
    deviations = [r for r in table if r.status == DEVIATION]
    summary = (
        f"Study `{cfg.name}`, protocol profile `{cfg.protocol.profile}`: {len(table)} elements, "
        f"{sum(r.status == MATCH for r in table)} match the paper, {len(deviations)} deviate, "
        f"{sum(r.status == NOT_APPLICABLE for r in table)} not applicable."
    )
    lines = [
        summary,
        "",
        "| element | paper | this config | set in | status | reason | paper sets it in |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table:
        value = "—" if row.status == NOT_APPLICABLE else _cell(row.value)
        status = f"**{row.status}**" if row.status == DEVIATION else row.status
        lines.append(
            f"| {row.element.name} | {_cell(row.element.paper)} | {value} | {row.set_in} | {status} | "
            f"{row.reason.replace('|', '/')} | {row.element.paper_source.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def fidelity(path: str | Path, overrides: Mapping[str, Any] | None = None) -> tuple[StudyConfig, list[Row]]:
    """The resolved config and its rows. Raises ConfigError (exit 2 in the CLI) for a bad config."""
    cfg = load_config(path, overrides)
    return cfg, rows(cfg, provenance(path, overrides, cfg))


def fidelity_markdown(path: str | Path, overrides: Mapping[str, Any] | None = None) -> str:
    cfg, table = fidelity(path, overrides)
    return markdown(cfg, table)


def docs_page(config: str) -> str:
    """docs/fidelity/<config>.md: a generated page (the test fails when it is stale)."""
    path = f"configs/{config}.yaml"
    return (
        f"# Fidelity: {config}\n\n"
        f"Generated by `polyglot fidelity {path}` (regenerate all pages: "
        "`.venv/bin/python -m flows.protocol.fidelity --write-docs`); do not edit by hand.\n\n"
        + fidelity_markdown(path)
    )


def write_docs(root: Path = Path(".")) -> list[Path]:
    written = []
    for config in PAPER_CONFIGS:
        target = root / DOCS_DIR / f"{config}.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(docs_page(config), encoding="utf-8")
        written.append(target)
    return written


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--write-docs"]:
        sys.exit("usage: python -m flows.protocol.fidelity --write-docs  (run from the repository root)")
    for page in write_docs():
        print(page)
