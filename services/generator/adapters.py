"""LoRA adapters by artifact URI: fetched from the store into a local cache, loaded into the engine by name,
with at most `max_loaded` loaded at once (least recently used goes first).

Adapters travel as URIs (`s3://bucket/models/.../adapter`, `file:///...`), never inside messages. They
are fetched with the store's `fetch_dir_cached`: downloaded once, and never left half-fetched at the
cached path where a later load would trust it.

Requests pin the adapter they use for as long as they run; eviction only ever takes an unpinned one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PolyglotError,
    ResourceExhausted,
)
from services.generator.engine import BASE

log = logging.getLogger("polyglot.generator.adapters")


@dataclass
class LoadedAdapter:
    name: str
    uri: str
    path: Path
    pins: int = 0
    last_used: float = 0.0


ADAPTER_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


def uri_adapter_name(uri: str) -> str:
    """The engine name of an adapter asked for by URI: URIs hold dots, which PEFT module names may not."""
    return "uri-" + hashlib.sha256(uri.encode()).hexdigest()[:16]


def looks_like_uri(ref: str) -> bool:
    return "://" in ref


class AdapterCache:
    def __init__(
        self,
        load: Callable[[str, str], None],
        unload: Callable[[str], None],
        *,
        cache_dir: Path,
        max_loaded: int,
        store_options: dict[str, Any] | None = None,
    ):
        self._engine_load = load
        self._engine_unload = unload
        self.cache_dir = Path(cache_dir)
        self.max_loaded = max_loaded
        self.store_options = store_options or {}
        self._loaded: dict[str, LoadedAdapter] = {}
        self._lock = asyncio.Lock()

    # -- fetching (blocking; runs in a worker thread) ------------------------------------------------------

    def fetch(self, uri: str) -> Path:
        """The local directory of the adapter at `uri`, downloading it once (crash-safe, see `fetch_dir_cached`)."""
        from services.common.store import fetch_dir_cached, open_store

        def check(path: Path) -> None:
            if not (path / "adapter_config.json").exists():
                raise FailedPrecondition(f"{uri} holds no adapter_config.json: not a PEFT adapter", field="uri")

        # The options (endpoint, keys) are S3's; a file:// adapter takes none.
        options = self.store_options if uri.startswith("s3://") else {}
        try:
            return fetch_dir_cached(open_store(uri, **options), "", self.cache_dir, check=check)
        except NotFound as exc:
            raise NotFound(f"no adapter at {uri}: {exc.message}", field="uri") from exc

    # -- loading --------------------------------------------------------------------------------------------

    def loaded(self) -> list[LoadedAdapter]:
        return list(self._loaded.values())

    async def load(self, name: str, uri: str) -> LoadedAdapter:
        if not name:
            raise InvalidArgument("must name the adapter", field="name")
        if not ADAPTER_NAME.fullmatch(name):
            # PEFT uses the name as a module name: no dots, slashes or spaces.
            raise InvalidArgument(f"{name!r}: use letters, digits, '_' and '-' only", field="name")
        if not uri:
            raise InvalidArgument("must be the adapter's artifact URI", field="uri")
        async with self._lock:
            return await self._load_locked(name, uri)

    async def _load_locked(self, name: str, uri: str) -> LoadedAdapter:
        existing = self._loaded.get(name)
        if existing:
            if existing.uri != uri:
                raise AlreadyExists(
                    f"adapter {name!r} is already loaded from {existing.uri}; unload it first", field="name"
                )
            existing.last_used = time.monotonic()
            return existing
        path = await asyncio.to_thread(self.fetch, uri)
        while len(self._loaded) >= self.max_loaded:
            await self._evict_one()
        await asyncio.to_thread(self._engine_load, name, str(path))
        entry = self._loaded[name] = LoadedAdapter(name, uri, path, last_used=time.monotonic())
        log.info("loaded adapter %s from %s", name, uri)
        return entry

    async def _evict_one(self) -> None:
        idle = [a for a in self._loaded.values() if a.pins == 0]
        if not idle:
            raise ResourceExhausted(
                f"all {self.max_loaded} adapter slots are held by running requests; retry later", field="adapter"
            )
        victim = min(idle, key=lambda a: a.last_used)
        await asyncio.to_thread(self._engine_unload, victim.name)
        del self._loaded[victim.name]
        log.info("evicted adapter %s (least recently used)", victim.name)

    async def unload(self, name: str) -> None:
        async with self._lock:
            entry = self._loaded.get(name)
            if entry is None:
                raise NotFound(f"adapter {name!r} is not loaded", field="name")
            if entry.pins:
                raise FailedPrecondition(f"adapter {name!r} is serving {entry.pins} request(s)", field="name")
            await asyncio.to_thread(self._engine_unload, name)
            del self._loaded[name]

    @contextlib.asynccontextmanager
    async def use(self, ref: str, field: str = "adapter") -> AsyncIterator[str]:
        """Pin the adapter `ref` (a loaded name, or a URI loaded on first use) while the block runs;
        yields the engine's adapter name (BASE for the base model)."""
        if ref == BASE:
            yield BASE
            return
        async with self._lock:
            entry = self._loaded.get(ref)
            if entry is None:
                if not looks_like_uri(ref):
                    raise NotFound(f"no adapter named {ref!r} is loaded (load it, or pass its URI)", field=field)
                entry = next((a for a in self._loaded.values() if a.uri == ref), None)
                if entry is None:
                    try:
                        entry = await self._load_locked(uri_adapter_name(ref), ref)
                    except PolyglotError as exc:
                        if exc.field not in ("uri", "name"):
                            raise
                        raise type(exc)(exc.message, field=field) from exc
            entry.pins += 1
            entry.last_used = time.monotonic()
        try:
            yield entry.name
        finally:
            entry.pins -= 1
