"""The reply cache: finished judge and translation replies, kept in the artifact store.

Key = SHA-256 over (kind, provider, model, template hash, inputs, sampling parameters), so a rerun of
the same batch makes zero API calls, and changing any of them (a new rubric, another model) misses.
Only definitive outcomes are stored (a verdict, or a reply that stayed unparsable after repair: with
temperature 0 asking again would not help); failures such as exhausted retries are not, so a rerun
retries them. Records never hold credentials: nothing from the settings but the model name goes in.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

from services.common.errors import FailedPrecondition, NotFound
from services.common.store import ArtifactStore

log = logging.getLogger("polyglot.judge.cache")
CACHE_VERSION = 1


def cache_key(kind: str, provider: str, model: str, template_sha256: str, inputs: dict, params: dict) -> str:
    material = {
        "v": CACHE_VERSION,
        "kind": kind,
        "provider": provider,
        "model": model,
        "template": template_sha256,
        "inputs": inputs,
        "params": params,
    }
    blob = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ReplyCache:
    def __init__(self, store: ArtifactStore, prefix: str = "judge"):
        self.store = store
        self.prefix = prefix

    def _path(self, kind: str, key: str) -> str:
        return f"{self.prefix}/cache/{kind}/{key[:2]}/{key}.json"

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        try:
            record = await asyncio.to_thread(self.store.get_json, self._path(kind, key))
        except NotFound:
            return None
        except FailedPrecondition as exc:  # a corrupt object: ignore it, the fresh reply overwrites it
            log.warning("ignoring unreadable cache object: %s", exc)
            return None
        return record if isinstance(record, dict) and record.get("key") == key else None

    async def put(self, kind: str, key: str, record: dict[str, Any]) -> None:
        await asyncio.to_thread(self.store.put_json, self._path(kind, key), {**record, "key": key})
