"""Load a study config from YAML, with errors that name the field and the line it came from.

PyYAML composes the document into nodes that carry their position; we record the line of every
mapping key and sequence item by path, then validate the plain data with pydantic and translate each
error's location back into `evaluation.tasks.xquad.languages[2]` and its line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from flows.config.profile import apply_profile
from flows.config.schema import StudyConfig
from services.common.errors import InvalidArgument

PathKey = tuple[str | int, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TASKS: PathKey = ("evaluation", "tasks")
_TASKS_OPTION = "--tasks"  # what an unknown name given to `tasks` is blamed on


class ConfigIssue(NamedTuple):
    path: str  # dotted field path, "" for the document as a whole
    line: int | None  # 1-based line in the file; None when the value did not come from the file
    message: str


class ConfigError(InvalidArgument):
    """A study config that does not parse or validate. `issues` lists every problem found.

    `field` is the first problem's path and `line` its line, so a CLI can print one line and exit 2.
    """

    def __init__(self, issues: list[ConfigIssue], source: str):
        self.issues = issues
        self.source = source
        self.line = issues[0].line
        text = "\n".join(_format(issue, source) for issue in issues)
        super().__init__(text, field=issues[0].path or None)

    def __str__(self) -> str:
        return self.message


def _format(issue: ConfigIssue, source: str) -> str:
    where = f"{source}:{issue.line}" if issue.line else source
    return f"{where}: {issue.path}: {issue.message}" if issue.path else f"{where}: {issue.message}"


def format_path(parts: PathKey) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_config(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    tasks: Sequence[str] | None = None,
    check_paths: bool = False,
) -> StudyConfig:
    """Read and validate a study file. Relative paths inside it are relative to the file.

    `overrides` maps dotted keys to values (`{"training.max_steps": 5}`); string values are parsed as
    YAML scalars, so a CLI can pass `--set training.max_steps=5` through unchanged. An override that sets
    an evaluation task to null (`--set evaluation.tasks.chat=null`) drops the task; in the file, a bare
    `chat:` runs it with its defaults. `tasks` keeps only the named tasks, after the overrides: a named task
    the file leaves out runs with its defaults. `check_paths` also requires every local path the config
    reads (data, tokenizers, model directories) to exist on this machine.
    Raises ConfigError (an InvalidArgument) for unreadable, malformed or invalid files.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        issue = ConfigIssue("", None, f"cannot read the study config: {exc.strerror}")
        raise ConfigError([issue], str(path)) from None
    return parse_config(
        text,
        base_dir=path.resolve().parent,
        source=str(path),
        overrides=overrides,
        tasks=tasks,
        check_paths=check_paths,
    )


def parse_config(
    text: str,
    *,
    base_dir: Path | None = None,
    source: str = "<string>",
    overrides: Mapping[str, Any] | None = None,
    tasks: Sequence[str] | None = None,
    check_paths: bool = False,
) -> StudyConfig:
    """Validate YAML text; `base_dir` anchors relative paths (default: the working directory), the rest
    is as in `load_config`."""
    data, lines = _parse_yaml(text, source)
    overridden = _apply_overrides(data, overrides or {}, source)
    selected = _select_tasks(data, tasks) if tasks is not None else set()
    apply_profile(data)  # the profile fills what the file and the overrides leave out
    context = {"base_dir": base_dir or Path.cwd(), "check_paths": check_paths}
    try:
        return StudyConfig.model_validate(data, context=context)
    except ValidationError as exc:
        issues = [_issue(error, data, lines, overridden, selected) for error in exc.errors()]
        raise ConfigError(issues, source) from None


def _parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[PathKey, int]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, {}
        lines: dict[PathKey, int] = {(): node.start_mark.line + 1}
        duplicates: list[ConfigIssue] = []
        _record_lines(node, (), lines, duplicates, set())
        if duplicates:
            raise ConfigError(duplicates, source)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"invalid YAML: {exc.problem or exc.context}"
        if exc.context and exc.problem:
            # e.g. an unclosed [ is noticed lines later: say where the construct began.
            started = f" started on line {exc.context_mark.line + 1}" if exc.context_mark else ""
            message += f" ({exc.context}{started})"
        raise ConfigError([ConfigIssue("", mark.line + 1 if mark else None, message)], source) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue("", None, f"invalid YAML: {exc}")], source) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ConfigError([ConfigIssue("", 1, f"a study config is a YAML mapping, got a {kind}")], source)
    return data, lines


def parse_yaml(text: str, source: str = "<string>") -> tuple[dict[str, Any], dict[PathKey, int]]:
    """The parsed document and the line of every key and item by path (ConfigError when it does not parse)."""
    return _parse_yaml(text, source)


def _record_lines(
    node: yaml.Node, path: PathKey, lines: dict[PathKey, int], duplicates: list[ConfigIssue], active: set[int]
) -> None:
    if id(node) in active:  # a recursive alias
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                duplicates.append(ConfigIssue(format_path((*path, key)), line, "duplicate key"))
            seen.add(key)
            lines[(*path, key)] = line
            _record_lines(value_node, (*path, key), lines, duplicates, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _record_lines(item, (*path, index), lines, duplicates, active)
    active.discard(id(node))


def _apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any], source: str) -> set[PathKey]:
    applied: set[PathKey] = set()
    for dotted, value in overrides.items():
        keys = tuple(dotted.split("."))
        target = data
        for depth, key in enumerate(keys[:-1]):
            child = target.setdefault(key, {})
            if not isinstance(child, dict):
                where = format_path(keys[: depth + 1])
                raise ConfigError([ConfigIssue(dotted, None, f"override goes through {where}, not a mapping")], source)
            target = child
        parsed = yaml.safe_load(value) if isinstance(value, str) else value
        if parsed is None and keys[:-1] == _TASKS:
            # In a file `chat:` is null and runs the task; an override that says null means "not this task".
            target.pop(keys[-1], None)
        else:
            target[keys[-1]] = parsed
        applied.add(keys)
    return applied


def _select_tasks(data: dict[str, Any], names: Sequence[str]) -> set[str]:
    """Keep only `names` under evaluation.tasks; returns the names the file did not configure."""
    evaluation = data.setdefault("evaluation", {})
    if not isinstance(evaluation, dict):
        return set()  # validation reports the section itself
    configured = evaluation.get("tasks") if isinstance(evaluation.get("tasks"), dict) else {}
    evaluation["tasks"] = {name: configured.get(name) for name in names}
    return {name for name in names if name not in configured}


def _issue(
    error: Mapping[str, Any], data: Any, lines: dict[PathKey, int], overridden: set[PathKey], selected: set[str]
) -> ConfigIssue:
    path = _data_path(error["loc"], data, error["type"])
    if len(path) > len(_TASKS) and path[: len(_TASKS)] == _TASKS and path[len(_TASKS)] in selected:
        return ConfigIssue(_TASKS_OPTION, None, error["msg"].removeprefix("Value error, "))
    if any(path[: len(keys)] == keys for keys in overridden):
        line, suffix = None, " (from an override)"
    else:
        line, suffix = _line_of(path, lines), ""
    message = error["msg"].removeprefix("Value error, ")
    got = repr(error.get("input"))
    if error["type"] not in ("missing", "extra_forbidden") and not isinstance(error.get("input"), (dict, list)):
        message += "" if got in message else f" (got {got})"
    if error["type"] == "extra_forbidden":
        message = "unknown key (misspelt?)"
    return ConfigIssue(format_path(path), line, message + suffix)


def _data_path(loc: tuple[Any, ...], data: Any, error_type: str) -> PathKey:
    """Keep the parts of a pydantic location that exist in the data; drop union and validator tags."""
    path: list[str | int] = []
    current = data
    for position, part in enumerate(loc):
        last = position == len(loc) - 1
        in_dict = isinstance(current, dict) and isinstance(part, str) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            current = current[part]
            path.append(part)
        elif last and error_type == "missing" and isinstance(current, dict) and isinstance(part, str):
            path.append(part)
    return tuple(path)


def _line_of(path: PathKey, lines: dict[PathKey, int]) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None
