"""Training datasets: jsonl artifacts whose rows carry Guanaco-format chat text in a `text` field.

    {"text": "### Human: Hallo!### Assistant: Hallo, wie kann ich helfen?### Human: …### Assistant: …"}

The whole text is the training sequence (the paper trains on every turn), so a row must be a complete
conversation: it opens with a human turn, roles alternate, and no turn is empty. Both the canonical
layout (no space before a marker) and the spaced one of the OASST source (` ### Assistant:`) are accepted.
Checking every row at submit time costs one read of the file and spares a worker that would fail later.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import InvalidArgument, NotFound
from services.common.store import open_object

FIELD = "spec.dataset_uri"
_MARKER = re.compile(r"###\s*(Human|Assistant)\s*:")


@dataclass(frozen=True)
class DatasetManifest:
    """What a job records about its data: where it was, what it hashed to, how many rows it had."""

    uri: str
    sha256: str
    rows: int
    size_bytes: int
    manifest_sha256: str = ""  # of a sibling `manifest.json` (written by the data flow), when present

    @property
    def identity(self) -> str:
        """The hash the training card names: the data flow's manifest when there is one, else the file's."""
        return self.manifest_sha256 or self.sha256


def chat_format_error(text: object) -> str | None:
    """Why `text` is not a complete Guanaco conversation, or None when it is."""
    if not isinstance(text, str):
        return f"`text` must be a string, got {type(text).__name__}"
    pieces = _MARKER.split(text)
    if pieces[0].strip():
        return "`text` must start with '### Human:'"
    roles, contents = pieces[1::2], pieces[2::2]
    if not roles:
        return "`text` has no '### Human:' / '### Assistant:' turns"
    for i, (role, content) in enumerate(zip(roles, contents, strict=True)):
        expected = "Human" if i % 2 == 0 else "Assistant"
        if role != expected:
            return f"turn {i} is '### {role}:' where '### {expected}:' was expected (roles must alternate)"
        if not content.strip():
            return f"turn {i} ('### {role}:') is empty"
    if len(roles) < 2:
        return "`text` has no '### Assistant:' reply"
    return None


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


def iter_rows(chunks: Iterable[bytes], *, field: str = FIELD) -> Iterator[tuple[int, str]]:
    """(row index, text) of every non-blank line, checking each; the first bad row raises `InvalidArgument`
    naming its index and line number."""
    row = 0
    for line_no, raw in enumerate(_lines(chunks), start=1):
        if not raw.strip():
            continue
        where = f"row {row} (line {line_no})"
        try:
            record = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidArgument(f"{where} is not JSON: {exc}", field=field) from None
        if not isinstance(record, dict) or "text" not in record:
            raise InvalidArgument(f"{where} has no `text` field", field=field)
        problem = chat_format_error(record["text"])
        if problem:
            raise InvalidArgument(f"{where} is not in the Guanaco chat format: {problem}", field=field)
        yield row, record["text"]
        row += 1


def validate_dataset(uri: str, *, field: str = FIELD) -> DatasetManifest:
    """Check a dataset artifact before any work: it exists, has rows, and every row is a conversation."""
    try:
        store, key = open_object(uri)
        info = store.stat(key)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, field=field) from None
    except NotFound:
        raise NotFound(f"no dataset at {uri}", field=field) from None
    rows = sum(1 for _ in iter_rows(store.stream(key), field=field))
    if rows == 0:
        raise InvalidArgument(f"{uri} has no rows", field=field)
    manifest_key = posixpath.join(posixpath.dirname(key), "manifest.json")
    manifest_sha = ""
    if manifest_key != key:
        with contextlib.suppress(NotFound):
            manifest_sha = store.stat(manifest_key).sha256
    return DatasetManifest(uri=uri, sha256=info.sha256, rows=rows, size_bytes=info.size, manifest_sha256=manifest_sha)


def load_texts(path: str | Path) -> list[str]:
    """The `text` of every row of a local jsonl file (already validated at submit; checked again)."""
    with open(path, "rb") as f:
        return [text for _, text in iter_rows(f)]
