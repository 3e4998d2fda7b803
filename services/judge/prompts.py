"""Prompt templates: text files with `{{placeholder}}` fields, validated before any call is made.

Templates are data a user can replace (per-language and per-task text lives in files, not code):
a request names a template (`helpfulness`: `templates/helpfulness.txt`, or the same name in the
configured `template_dir`) or gives an artifact URI of one (`s3://…/paper_prompt.txt`, `file:///…`).
Substitution is one pass over the template, so a response that itself contains `{{prompt}}` is sent
verbatim and never expanded. Braces elsewhere (the JSON example in the rubric) need no escaping.

A URI is the caller's choice, so the server confines it (issue 19, row 5): it must lie under one of the
template roots (`template_roots`, the judge's store, `template_dir`); a file must be a regular file
(opened with O_NONBLOCK and checked with fstat before any read, so a FIFO or a device such as /dev/zero is
refused without blocking); and no template is read past `max_template_bytes`. `aload` also bounds the
read's time.

A chat template is a `.json` file, `{"system": str, "user": str, "repair": bool, "parsing": "lenient" |
"strict"}`: a system message before the user message (both with placeholders), whether an unparsable
verdict gets one repair request, and how the verdict is read (`parsing.py`). The `paper` profile's judge
and translation prompts come this way (`flows/protocol/render.py` writes them from the paper's sources).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

from services.common.errors import DeadlineExceeded, InvalidArgument, NotFound
from services.common.store import StoreLocation, open_object, parse_uri

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
    text: str  # the user message
    system: str = ""  # a chat template's system message ("" = none is sent)
    repair: bool = True  # an unparsable verdict gets one repair request
    parsing: str = "lenient"  # how a verdict is read: `lenient` or `strict` (services.judge.parsing)

    @cached_property
    def sha256(self) -> str:
        """Part of every cache key: editing a template invalidates exactly its cached replies."""
        if not self.system and self.repair and self.parsing == "lenient":
            return hashlib.sha256(self.text.encode("utf-8")).hexdigest()  # a text template's key, as ever
        whole = json.dumps([self.system, self.text, self.repair, self.parsing], ensure_ascii=False)
        return hashlib.sha256(whole.encode("utf-8")).hexdigest()

    def render(self, **values: str) -> str:
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], self.text)

    def messages(self, **values: str) -> list[dict[str, str]]:
        """The chat messages: the system message (if any, filled in too) and the user message."""
        user = {"role": "user", "content": self.render(**values)}
        if not self.system:
            return [user]
        return [{"role": "system", "content": PLACEHOLDER.sub(lambda m: values[m.group(1)], self.system)}, user]


def parse_chat(text: str, name: str, kind: Kind, field: str = "template") -> Template:
    """A `.json` chat template (see the module docstring), checked like a text template."""
    try:
        data = json.loads(text)
        system, user = data.get("system", ""), data["user"]
        repair, parsing = data.get("repair", True), data.get("parsing", "lenient")
        if not (isinstance(system, str) and isinstance(user, str) and isinstance(repair, bool)):
            raise TypeError("system and user must be strings, repair a boolean")
        if parsing not in ("lenient", "strict"):
            raise ValueError(f"parsing must be lenient or strict, not {parsing!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidArgument(f"chat template {name!r} is not valid: {exc}", field=field) from None
    checked = parse(user, name, kind, field, extra=system)
    return Template(name, checked.text, system, repair, parsing)


def parse(text: str, name: str, kind: Kind, field: str = "template", extra: str = "") -> Template:
    """A template of `kind`, or InvalidArgument(field) naming missing or unknown placeholders (in `text`
    and `extra`, a chat template's system message)."""
    used = {m.group(1) for m in PLACEHOLDER.finditer(text + extra)}
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
    """Finds templates by name (user directory first, then the built-ins) or by an artifact URI under one of
    `roots` (directories or URI prefixes), reading at most `max_bytes`."""

    def __init__(self, user_dir: Path | None = None, roots: Sequence[str] = (), max_bytes: int = 65536):
        self.user_dir = user_dir
        self.roots = [parse_uri(root) for root in roots]
        self.max_bytes = max_bytes

    async def aload(self, spec: str, kind: Kind, field: str = "template", timeout: float = 10.0) -> Template:
        """`load` in a thread, given up after `timeout` seconds (DEADLINE_EXCEEDED naming `field`)."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.load, spec, kind, field), timeout)
        except TimeoutError:
            raise DeadlineExceeded(f"reading template {spec!r} took over {timeout:g} s", field=field) from None

    def load(self, spec: str, kind: Kind, field: str = "template") -> Template:
        """Blocking (a URI may be read from S3): async callers use `aload`."""
        spec = spec.strip() or kind.default
        if "://" in spec or spec.startswith("file:"):
            reader = parse_chat if spec.endswith(".json") else parse
            return reader(self._read_uri(spec, field), spec, kind, field)
        if not _NAME.match(spec):
            raise InvalidArgument(f"{spec!r} is neither a template name nor an artifact URI", field=field)
        names = [spec] if spec.endswith((".txt", ".json")) else [f"{spec}.txt", f"{spec}.json"]
        # The user's directory first (a chat template there overrides a built-in text one), then the built-ins.
        for filename in names:
            reader = parse_chat if filename.endswith(".json") else parse
            if self.user_dir and (self.user_dir / filename).is_file():
                return reader(self._read_file(self.user_dir / filename, spec, field), spec, kind, field)
        for filename in names:
            reader = parse_chat if filename.endswith(".json") else parse
            builtin = resources.files("services.judge.templates").joinpath(filename)
            if builtin.is_file():
                return reader(builtin.read_text("utf-8"), spec, kind, field)
        raise InvalidArgument(f"no template named {spec!r}", field=field)

    def _confined(self, location: StoreLocation) -> bool:
        for root in self.roots:
            if (root.scheme, root.bucket) != (location.scheme, location.bucket):
                continue
            if root.scheme == "file":
                if Path(location.path).is_relative_to(root.path):
                    return True
            elif not root.path or location.path.startswith(root.path + "/"):
                return True
        return False

    def _read_uri(self, uri: str, field: str) -> str:
        try:
            location = parse_uri(uri)  # a file path comes back resolved: a symlink is judged by its target
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message, field=field) from None
        if not self._confined(location):
            raise InvalidArgument(
                f"{uri} is outside the judge's template roots (its store, template_dir, template_roots)", field=field
            )
        if location.scheme == "file":
            return self._read_file(Path(location.path), uri, field)
        store, key = open_object(uri)
        try:
            size = store.stat(key).size
            if size > self.max_bytes:
                raise self._too_large(uri, field)
            data = store.get_bytes(key)
        except NotFound as exc:
            raise NotFound(f"template {uri} not found", field=field) from exc
        if len(data) > self.max_bytes:  # replaced by a larger object since the stat
            raise self._too_large(uri, field)
        return self._decode(data, uri, field)

    def _read_file(self, path: Path, name: str, field: str) -> str:
        """A regular file's text, at most `max_bytes`. O_NONBLOCK makes opening a FIFO return at once, and
        fstat then refuses anything but a regular file before a byte is read."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"template {name} not found", field=field) from None
        except OSError as exc:
            raise InvalidArgument(f"template {name} cannot be opened: {exc.strerror}", field=field) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise InvalidArgument(f"template {name} is not a regular file", field=field)
            if info.st_size > self.max_bytes:
                raise self._too_large(name, field)
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read(self.max_bytes + 1)  # the file may grow after the fstat
        finally:
            os.close(fd)
        if len(data) > self.max_bytes:
            raise self._too_large(name, field)
        return self._decode(data, name, field)

    def _too_large(self, name: str, field: str) -> InvalidArgument:
        return InvalidArgument(f"template {name} is larger than max_template_bytes ({self.max_bytes})", field=field)

    @staticmethod
    def _decode(data: bytes, name: str, field: str) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgument(f"template {name} is not UTF-8 text", field=field) from exc
