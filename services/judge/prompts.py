"""Prompt templates: text files with `{{placeholder}}` fields, validated before any call is made.

Templates are data a user can replace (per-language and per-task text lives in files, not code):
a request names a template (`helpfulness`: `templates/helpfulness.txt`, or the same name in the
configured `template_dir`) or gives an artifact URI of one (`s3://…/paper_prompt.txt`, `file:///…`).
Substitution is one pass over the template, so a response that itself contains `{{prompt}}` is sent
verbatim and never expanded. Braces elsewhere (the JSON example in the rubric) need no escaping.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

from services.common.errors import InvalidArgument, NotFound
from services.common.store import open_object

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class Kind:
    """What a template is for, and the placeholders it must and may use."""

    default: str
    required: frozenset[str]
    optional: frozenset[str] = frozenset()


GRADE = Kind("helpfulness", frozenset({"prompt", "response"}), frozenset({"language"}))
TRANSLATE = Kind("translate", frozenset({"text", "target_language"}), frozenset({"source_language"}))
REPAIR = Kind("repair", frozenset({"error"}))


@dataclass(frozen=True)
class Template:
    name: str
    text: str

    @cached_property
    def sha256(self) -> str:
        """Part of every cache key: editing a template invalidates exactly its cached replies."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def render(self, **values: str) -> str:
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], self.text)


def parse(text: str, name: str, kind: Kind, field: str = "template") -> Template:
    """A template of `kind`, or InvalidArgument(field) naming missing or unknown placeholders."""
    used = {m.group(1) for m in PLACEHOLDER.finditer(text)}
    missing = sorted(kind.required - used)
    if missing:
        names = ", ".join("{{" + p + "}}" for p in missing)
        raise InvalidArgument(f"template {name!r} lacks the placeholder(s) {names}", field=field)
    unknown = sorted(used - kind.required - kind.optional)
    if unknown:
        allowed = ", ".join("{{" + p + "}}" for p in sorted(kind.required | kind.optional))
        names = ", ".join("{{" + p + "}}" for p in unknown)
        raise InvalidArgument(
            f"template {name!r} uses unknown placeholder(s) {names} (allowed: {allowed})", field=field
        )
    return Template(name, text)


class TemplateLibrary:
    """Finds templates by name (user directory first, then the built-ins) or by artifact URI."""

    def __init__(self, user_dir: Path | None = None):
        self.user_dir = user_dir

    def load(self, spec: str, kind: Kind, field: str = "template") -> Template:
        """Blocking (a URI may be read from S3): async callers run it in a thread."""
        spec = spec.strip() or kind.default
        if "://" in spec or spec.startswith("file:"):
            return parse(self._read_uri(spec, field), spec, kind, field)
        if not _NAME.match(spec):
            raise InvalidArgument(f"{spec!r} is neither a template name nor an artifact URI", field=field)
        filename = spec if spec.endswith(".txt") else f"{spec}.txt"
        if self.user_dir and (self.user_dir / filename).is_file():
            return parse((self.user_dir / filename).read_text("utf-8"), spec, kind, field)
        builtin = resources.files("services.judge.templates").joinpath(filename)
        if builtin.is_file():
            return parse(builtin.read_text("utf-8"), spec, kind, field)
        raise InvalidArgument(f"no template named {spec!r}", field=field)

    @staticmethod
    def _read_uri(uri: str, field: str) -> str:
        store, key = open_object(uri)
        try:
            data = store.get_bytes(key)
        except NotFound as exc:
            raise NotFound(f"template {uri} not found", field=field) from exc
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgument(f"template {uri} is not UTF-8 text", field=field) from exc
