"""The reply cache: finished judge and translation replies, kept in the artifact store.

Key = SHA-256 over (kind, provider, model, template hash, inputs, sampling parameters), so a rerun of
the same batch makes zero API calls, and changing any of them (a new rubric, another model) misses.
Only definitive outcomes are stored (a verdict, or a reply that stayed unparsable after repair: with
temperature 0 asking again would not help); failures such as exhausted retries are not, so a rerun
retries them. Records never hold credentials: nothing from the settings but the model name goes in.

A paid reply is never thrown away because the store failed (issue 19, row 7): a write that fails after
its retries keeps the record in memory (`unsaved`), where `get` finds it, and the next write or `flush`
tries again. Once `max_unsaved` replies wait, `check_room` refuses to buy more (UNAVAILABLE, or
RESOURCE_EXHAUSTED for a full disk). A read that fails is not a miss (that would pay for a reply the store
may hold): it raises UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

from services.common.errors import FailedPrecondition, NotFound, PolyglotError, ResourceExhausted, Unavailable
from services.common.store import ArtifactStore
from services.judge.storage import store_call

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
    def __init__(self, store: ArtifactStore, prefix: str = "judge", *, attempts: int = 3, max_unsaved: int = 10000):
        self.store = store
        self.prefix = prefix
        self.attempts = attempts
        self.max_unsaved = max_unsaved
        self.unsaved: dict[str, dict[str, Any]] = {}  # object key -> a paid record the store has refused so far
        self._last_failure: PolyglotError | None = None

    def _path(self, kind: str, key: str) -> str:
        return f"{self.prefix}/cache/{kind}/{key[:2]}/{key}.json"

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        path = self._path(kind, key)
        if path in self.unsaved:
            return self.unsaved[path]
        try:
            record = await store_call(self.store.get_json, path, what="read a cached reply", attempts=self.attempts)
        except NotFound:
            return None
        except FailedPrecondition as exc:  # a corrupt object: ignore it, the fresh reply overwrites it
            log.warning("ignoring unreadable cache object: %s", exc)
            return None
        return record if isinstance(record, dict) and record.get("key") == key else None

    async def put(self, kind: str, key: str, record: dict[str, Any]) -> None:
        """Never raises for a failing store: the record waits in memory instead (see the module docstring)."""
        path = self._path(kind, key)
        record = {**record, "key": key}
        try:
            await store_call(self.store.put_json, path, record, what="write a paid reply", attempts=self.attempts)
        except PolyglotError as exc:
            self.unsaved[path] = record
            self._last_failure = exc
            log.error(json.dumps({"event": "judge_cache_unsaved", "unsaved": len(self.unsaved), "error": str(exc)}))
            return
        if self.unsaved:
            await self.flush()  # the store takes writes again: write what waits

    async def flush(self) -> None:
        """Write the replies that wait in memory; stop at the first refusal (the store is still failing)."""
        for path, record in list(self.unsaved.items()):
            try:
                await asyncio.to_thread(self.store.put_json, path, record)
            except Exception as exc:
                log.warning("the judge's store still refuses writes: %s", exc)
                return
            self.unsaved.pop(path, None)
        if not self.unsaved:
            self._last_failure = None

    def check_room(self) -> None:
        """Before a request is bought: refuse once `max_unsaved` paid replies wait for a failing store."""
        if self.unsaved and len(self.unsaved) >= self.max_unsaved:
            error = ResourceExhausted if isinstance(self._last_failure, ResourceExhausted) else Unavailable
            raise error(
                f"{len(self.unsaved)} paid replies wait in memory for the judge's store ({self._last_failure}); "
                "no new request is sent until it takes writes again (max_unsaved_replies)"
            )
