"""The paper's texts, read out of its fetched sources by parsing them (never by matching patterns in code).

- Python scripts (`llm_judge.py`, `translate_with_gpt.py`): `ast`. The function that returns the chat
  messages (a list of `{"role": ..., "content": ...}` dicts) names each message's text: a parameter whose
  default is a module-level string, or `<string>.format(name=...)`. Its argparse defaults come along.
- Notebooks (`prepare_xquad_data.ipynb`, `prepare_xcsqa_data.ipynb`): the .ipynb JSON, each code cell
  `ast`-parsed. The per-language templates are the values of the `language_prompts` dict; the item
  dicts written to the data files say which template the cross-lingual file uses, whether the formatted
  text is `.strip()`ped, and which inputs are stripped before formatting.
- Data: the translated AlpacaEval prompts (jsonl of `{"instruction": ...}`), `ml1_ids` (`"id":N` lines).

    from flows.protocol.paper_texts import load_paper_texts
    texts = load_paper_texts(Path("~/.cache/polyglot/paper-sources").expanduser())
"""

from __future__ import annotations

import ast
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from flows.protocol.sources import Pins, active_sources, load_pins
from services.common.errors import FailedPrecondition


class PaperSourceError(FailedPrecondition):
    """A fetched file does not have the shape this parser reads (a different commit or a changed file)."""

    def __init__(self, name: str, why: str):
        super().__init__(f"{name}: {why}", field="protocol.sources")


@dataclass(frozen=True)
class ChatTemplate:
    """A system message and a `str.format` user message, rendered exactly as the paper's script does."""

    system: str
    user: str
    fields: tuple[str, ...]  # the keyword names the script passes to `user.format`
    defaults: Mapping[str, Any]  # the script's argparse defaults, by option name without dashes

    def messages(self, **values: str) -> list[dict[str, str]]:
        missing = set(self.fields) - set(values)
        if missing:
            raise KeyError(f"missing values for {sorted(missing)}")
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.format(**{name: values[name] for name in self.fields})},
        ]


@dataclass(frozen=True)
class PromptTable:
    """The per-language prompt templates of a data-preparation notebook, and how it applies them."""

    templates: Mapping[str, str]  # language -> `str.format` template (the notebook's `language_prompts`)
    cross_lingual: str | None  # the fixed template of the cross-lingual (en:xx) files, if it writes them
    strip_output: bool  # the formatted text is `.strip()`ped
    stripped_inputs: frozenset[str]  # input variables assigned `<...>.strip()` before formatting

    @property
    def languages(self) -> list[str]:
        return list(self.templates)


@dataclass(frozen=True)
class PaperTexts:
    commit: str
    judge: ChatTemplate
    translation: ChatTemplate
    xquad: PromptTable
    xcsqa: PromptTable
    alpaca_eval: Mapping[str, tuple[str, ...]]  # language -> the paper's prompts, in file order
    mono_ids: tuple[int, ...]  # Guanaco row ids of the paper's Mono (ML1) mix, in file order


# -- Python sources ------------------------------------------------------------------------------------------------


def _strings(tree: ast.Module) -> dict[str, str]:
    """Module-level `name = "string"` assignments."""
    found = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            found[node.targets[0].id] = node.value.value
    return found


def _argparse_defaults(tree: ast.Module) -> dict[str, Any]:
    defaults = {}
    for node in ast.walk(tree):
        if not (_is_method_call(node, "add_argument") and node.args and isinstance(node.args[0], ast.Constant)):
            continue
        option = str(node.args[0].value)
        for keyword in node.keywords:
            if option.startswith("--") and keyword.arg == "default":
                with contextlib.suppress(ValueError):  # a computed default is not a literal: left out
                    defaults[option[2:]] = ast.literal_eval(keyword.value)
    return defaults


def _message_function(tree: ast.Module) -> tuple[ast.FunctionDef, dict[str, ast.expr]]:
    """The function returning `[{"role": ..., "content": ...}, ...]`, and its content expression per role."""
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for ret in (n for n in ast.walk(node) if isinstance(n, ast.Return)):
            elements = ret.value.elts if isinstance(ret.value, ast.List) else []
            if elements and all(isinstance(e, ast.Dict) for e in elements):
                roles = {}
                for message in elements:
                    entry = {
                        k.value: v
                        for k, v in zip(message.keys, message.values, strict=True)
                        if isinstance(k, ast.Constant)
                    }
                    if not isinstance(entry.get("role"), ast.Constant) or "content" not in entry:
                        break
                    roles[entry["role"].value] = entry["content"]
                else:
                    return node, roles
    raise LookupError("no function returns a list of role/content messages")


def _resolve(expr: ast.expr, function: ast.FunctionDef | None, strings: dict[str, str]) -> str:
    """The string a Name stands for: a parameter whose default is one (a default is evaluated where the
    function is defined: module scope), or a module string."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    if isinstance(expr, ast.Name):
        if function is not None:
            args = function.args.args
            named = [a.arg for a in args][len(args) - len(function.args.defaults) :]
            defaults = dict(zip(named, function.args.defaults, strict=True))
            if expr.id in defaults:
                return _resolve(defaults[expr.id], None, strings)
        if expr.id in strings:
            return strings[expr.id]
    raise LookupError(f"cannot resolve {ast.unparse(expr)} to a string")


def parse_chat_script(source: str, name: str) -> ChatTemplate:
    try:
        tree = ast.parse(source, filename=name)
        strings = _strings(tree)
        function, roles = _message_function(tree)
        system = _resolve(roles["system"], function, strings)
        user = roles["user"]
        if not (isinstance(user, ast.Call) and isinstance(user.func, ast.Attribute) and user.func.attr == "format"):
            raise LookupError("the user message is not `<template>.format(...)`")
        template = _resolve(user.func.value, function, strings)
        fields = tuple(keyword.arg for keyword in user.keywords if keyword.arg)
    except (SyntaxError, LookupError, KeyError) as exc:
        raise PaperSourceError(name, f"no system and user messages found ({exc})") from None
    return ChatTemplate(system, template, fields, MappingProxyType(_argparse_defaults(tree)))


# -- notebooks -----------------------------------------------------------------------------------------------------


def notebook_code(text: str, name: str) -> list[ast.Module]:
    """The notebook's code cells, each parsed (IPython magics and shell lines are left out)."""
    cells = json.loads(text)["cells"]
    modules = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        lines = [line for line in source.splitlines(keepends=True) if not line.lstrip().startswith(("%", "!"))]
        try:
            modules.append(ast.parse("".join(lines), filename=name))
        except SyntaxError as exc:
            raise PaperSourceError(name, f"a code cell does not parse ({exc.msg}, line {exc.lineno})") from None
    return modules


def _is_method_call(expr: ast.expr, method: str) -> bool:
    return isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == method


def _unwrap_format(expr: ast.expr) -> tuple[ast.expr, bool] | None:
    """(the template expression, stripped?) of `T.format(...)` or `T.format(...).strip()`."""
    stripped = False
    if _is_method_call(expr, "strip"):
        expr, stripped = expr.func.value, True
    if _is_method_call(expr, "format"):
        return expr.func.value, stripped
    return None


def parse_prompt_notebook(text: str, name: str, table: str = "language_prompts") -> PromptTable:
    modules = notebook_code(text, name)
    strings: dict[str, str] = {}
    for module in modules:
        strings.update(_strings(module))
    templates: dict[str, str] | None = None
    cross_lingual, strip_output, stripped_inputs = None, None, set()
    for module in modules:
        for node in ast.walk(module):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                target, value = node.targets[0].id, node.value
                if target == table and isinstance(value, ast.Dict):
                    templates = {}
                    for key, entry in zip(value.keys, value.values, strict=True):
                        if not (isinstance(key, ast.Constant) and isinstance(entry, ast.Name) and entry.id in strings):
                            raise PaperSourceError(name, f"`{table}` holds something other than template names")
                        templates[key.value] = strings[entry.id]
                elif _is_method_call(value, "strip"):
                    stripped_inputs.add(target)
            if isinstance(node, ast.Dict):
                for key, entry in zip(node.keys, node.values, strict=True):
                    found = _unwrap_format(entry) if isinstance(key, ast.Constant) else None
                    if found and key.value == "instruction":
                        template, stripped = found
                        strip_output = stripped if strip_output is None else strip_output and stripped
                        if isinstance(template, ast.Name) and template.id in strings:
                            cross_lingual = strings[template.id]
    if templates is None:
        raise PaperSourceError(name, f"no `{table}` dict of templates")
    if strip_output is None:
        raise PaperSourceError(name, "no item dict with an `instruction` built by `<template>.format(...)`")
    return PromptTable(MappingProxyType(templates), cross_lingual, strip_output, frozenset(stripped_inputs))


# -- data ----------------------------------------------------------------------------------------------------------


def parse_instructions(text: str, name: str) -> tuple[str, ...]:
    """A jsonl file of `{"instruction": ...}` records (pandas `read_json(lines=True)`'s format)."""
    try:
        return tuple(json.loads(line)["instruction"] for line in text.splitlines() if line.strip())
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise PaperSourceError(name, f"not a jsonl of instructions ({exc})") from None


def parse_ids(text: str, name: str) -> tuple[int, ...]:
    """`"id":N` lines: each is the inside of a JSON object, so it is read as one."""
    try:
        return tuple(int(json.loads("{" + line + "}")["id"]) for line in text.splitlines() if line.strip())
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise PaperSourceError(name, f'not a list of "id":N lines ({exc})') from None


# -- all of it -----------------------------------------------------------------------------------------------------


def load_paper_texts(directory: Path | None = None, pins: Pins | None = None) -> PaperTexts:
    """Every text the `paper` profile uses, parsed from a sources directory (by default the active one).
    The caller verifies the directory first (`sources.require_paper_sources`); this only reads it."""
    directory, pins = Path(directory or active_sources()), pins or load_pins()
    manifest = directory / "MANIFEST.json"
    # Parsed once per sources install (a re-fetch rewrites the manifest), not once per task and language.
    key = (str(directory), pins.commit, manifest.stat().st_mtime_ns if manifest.exists() else 0)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = _load(directory, pins)
    return _CACHE[key]


_CACHE: dict[tuple, PaperTexts] = {}


def _load(directory: Path, pins: Pins) -> PaperTexts:
    def read(name: str) -> str:
        path = directory / name
        if not path.is_file():
            raise PaperSourceError(name, f"missing in {directory}; run `polyglot protocol fetch --sources {directory}`")
        return path.read_text(encoding="utf-8")

    roles = pins.roles
    return PaperTexts(
        commit=pins.commit,
        judge=parse_chat_script(read(roles["judge"]), roles["judge"]),
        translation=parse_chat_script(read(roles["translation"]), roles["translation"]),
        xquad=parse_prompt_notebook(read(roles["xquad"]), roles["xquad"]),
        xcsqa=parse_prompt_notebook(read(roles["xcsqa"]), roles["xcsqa"]),
        alpaca_eval=MappingProxyType(
            {lang: parse_instructions(read(path), path) for lang, path in roles["alpaca_eval"].items()}
        ),
        mono_ids=parse_ids(read(roles["mono_ids"]), roles["mono_ids"]),
    )
