"""Conversation sources: the Guanaco dataset from the hub, or a local jsonl in Guanaco format.

Every source becomes a list of `Conversation`s in canonical Guanaco text (see `guanaco.py`), in the
source's own order, plus a content hash of exactly what was read: artifact keys derive from that hash,
never from a path or a dataset name, so a moved file keeps its artifacts and an edited one does not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.config import ConversationSource
from flows.data import guanaco
from services.common.config.types import looks_like_path
from services.common.errors import InvalidArgument, NotFound


@dataclass(frozen=True)
class Conversation:
    id: str  # unique within its source
    text: str  # canonical Guanaco text
    source_lang: str = ""  # the source's own language tag (OASST `lang`); informational, LID decides


@dataclass(frozen=True)
class ConversationSet:
    conversations: list[Conversation]
    source: str  # hub id, or the file name of a local source (not its path: manifests stay machine-free)
    sha256: str  # content hash of the conversations (see `content_hash`)
    incomplete: int = 0  # source rows left out: not a whole conversation (no reply, an empty turn)

    def __len__(self) -> int:
        return len(self.conversations)


def content_hash(conversations: Iterable[Conversation]) -> str:
    """SHA-256 over `id` and `text` of every conversation, in order."""
    digest = hashlib.sha256()
    for conv in conversations:
        digest.update(json.dumps([conv.id, conv.text], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _record_text(record: Mapping[str, Any]) -> str | None:
    # The OASST jsonl keeps the context in `input` and the reply in `output` (its `text` is the
    # context alone); the hub dataset has the whole conversation in `text`.
    context, reply = record.get("input"), record.get("output")
    if isinstance(context, str) and isinstance(reply, str):
        context = context.rstrip()
        if not context.endswith(guanaco.ASSISTANT):
            context += guanaco.ASSISTANT
        return f"{context} {reply}"
    text = record.get("text")
    return text if isinstance(text, str) else None


def from_records(records: Iterable[Mapping[str, Any]], origin: str = "records") -> list[Conversation]:
    """Conversations from Guanaco-format records (`text`, or `input` + `output`; optional `id`/`message_id`, `lang`)."""
    conversations: list[Conversation] = []
    seen: set[str] = set()
    for index, record in enumerate(records):
        where = f"{origin}[{index}]"
        raw = _record_text(record)
        if raw is None:
            raise InvalidArgument(f"{where} has no `text` (or `input` + `output`) string", field="data.conversations")
        text = guanaco.normalise(raw)
        if not text:
            raise InvalidArgument(f"{where} is an empty conversation", field="data.conversations")
        conv_id = str(record.get("id") or record.get("message_id") or f"{index:07d}")
        if conv_id in seen:
            raise InvalidArgument(f"{where}: duplicate id {conv_id!r}", field="data.conversations")
        seen.add(conv_id)
        conversations.append(Conversation(conv_id, text, str(record.get("lang") or "")))
    return conversations


def read_jsonl(path: str | Path) -> list[Conversation]:
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"conversation file {path} does not exist", field="data.conversations.source")
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidArgument(
                    f"{path}:{number}: not JSON ({exc.msg})", field="data.conversations.source"
                ) from None
    return from_records(records, origin=path.name)


def read_hub(dataset_id: str, split: str = "train") -> list[Conversation]:
    """Rows of a hub dataset through `datasets` (cached by it; needs the hub or its local cache).

    Also accepts anything `datasets.load_dataset` does, e.g. a local dataset directory.
    """
    import datasets  # heavy; only a hub source needs it

    try:
        rows = datasets.load_dataset(dataset_id, split=split)
    except FileNotFoundError as exc:
        raise NotFound(f"dataset {dataset_id!r} split {split!r}: {exc}", field="data.conversations.source") from exc
    return from_records(rows, origin=f"{dataset_id}:{split}")


def load_conversations(source: ConversationSource) -> ConversationSet:
    """Read the configured source: a local jsonl when `source` is a path, else a hub dataset.

    Rows that are not a complete conversation are left out (and counted): the trainer rejects a dataset
    with any such row, and a mix must not carry one.
    """
    if looks_like_path(source.source) or Path(source.source).is_file():
        conversations = read_jsonl(source.source)
        name = Path(source.source).name
    else:
        conversations = read_hub(source.source, source.split)
        name = f"{source.source}:{source.split}"
    complete = [c for c in conversations if guanaco.is_complete(c.text)]
    return ConversationSet(complete, name, content_hash(complete), len(conversations) - len(complete))
