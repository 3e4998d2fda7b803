"""LoRA adapters by artifact URI: fetched from the store into a local cache, loaded into the engine by name,
with at most `max_loaded` loaded at once (least recently used goes first).

Adapters travel as URIs (`s3://bucket/models/.../adapter`, `file:///...`), never inside messages. A URI is
resolved to its content first: the store's listing gives every file's SHA-256, and their hash (`digest`)
keys everything after it, not the URI's spelling. The local copy lives at `cache_dir/<digest>` (downloaded
once, checked against the listing, renamed into place only when complete), so every spelling of one
adapter, and every copy of it under other keys, shares one copy on disk and one slot in the engine. The
cache is pruned by size (`max_cache_bytes`, least recently used first), never taking a loaded adapter's copy.

An adapter asked for by URI is loaded under `uri-<digest>`: a name no caller can claim in advance for other
content (`LoadAdapter` refuses names starting with `uri-`), so a study's adapter cannot be pre-empted.

Requests pin the adapter they use for as long as they run; eviction only ever takes an unpinned one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PolyglotError,
    ResourceExhausted,
)
from services.common.store.confine import StoreRoots
from services.generator.engine import BASE

log = logging.getLogger("polyglot.generator.adapters")


@dataclass
class LoadedAdapter:
    name: str
    uri: str
    path: Path
    digest: str = ""  # content hash of the adapter's files (`content_digest`)
    pins: int = 0
    last_used: float = 0.0
    spellings: set[str] = field(default_factory=set)  # URIs already resolved to this content


ADAPTER_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
URI_NAME_PREFIX = "uri-"  # reserved: names of adapters loaded by URI
MAX_SPELLINGS = 64  # URIs remembered per adapter (more are resolved again through the store)


def uri_adapter_name(digest: str) -> str:
    """The engine name of an adapter asked for by URI: its content hash (URIs hold dots, which PEFT module
    names may not; and a name derived from the URI alone could be claimed first for other content)."""
    return URI_NAME_PREFIX + digest[:32]


def content_digest(files: list[tuple[str, str, int]]) -> str:
    """One hash for a directory of (relative key, sha256, size): equal for equal content, wherever it lives."""
    digest = hashlib.sha256()
    for key, sha, size in sorted(files):
        digest.update(f"{key}\0{sha}\0{size}\n".encode())
    return digest.hexdigest()


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def looks_like_uri(ref: str) -> bool:
    return "://" in ref


class LoraConfigFile(BaseModel):
    """The fields of a LoRA `adapter_config.json` that PEFT computes with while loading, where present: a
    wrong type there surfaces as a TypeError deep inside the engine, so it is refused first (PEFT checks the
    rest, and says what is missing)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    peft_type: Literal["LORA"] = "LORA"
    r: StrictInt = Field(8, gt=0)
    lora_alpha: StrictFloat = Field(8, gt=0)
    lora_dropout: StrictFloat = Field(0.0, ge=0, lt=1)
    target_modules: StrictStr | list[StrictStr] | None = None
    use_rslora: StrictBool = False
    use_dora: StrictBool = False


def check_adapter_config(path: Path, uri: str) -> None:
    """INVALID_ARGUMENT naming `uri` unless `path` is a LoRA config PEFT can load (JSON object, typed fields)."""
    try:
        LoraConfigFile.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        error = exc.errors()[0]
        where = str(error["loc"][0]) if error["loc"] else "the file"
        raise InvalidArgument(
            f"{uri}: adapter_config.json: {where}: {error['msg']} (got {error.get('input')!r:.80})", field="uri"
        ) from None


class AdapterCache:
    def __init__(
        self,
        load: Callable[[str, str], None],
        unload: Callable[[str], None],
        *,
        cache_dir: Path,
        max_loaded: int,
        store_options: dict[str, Any] | None = None,
        roots: StoreRoots | None = None,
        max_cache_bytes: int = 20 * 2**30,
    ):
        self.roots = roots or StoreRoots()  # where adapter URIs may point (default: anywhere)
        self._engine_load = load
        self._engine_unload = unload
        self.cache_dir = Path(cache_dir)
        self.max_loaded = max_loaded
        self.max_cache_bytes = max_cache_bytes
        self.store_options = store_options or {}
        self._loaded: dict[str, LoadedAdapter] = {}
        self._lock = asyncio.Lock()

    # -- fetching (blocking; runs in a worker thread) ------------------------------------------------------

    def fetch(self, uri: str) -> tuple[Path, str]:
        """(local directory, content digest) of the adapter at `uri`: resolved through the store's listing, and
        downloaded only if no copy of that content is cached yet (checked file by file against the listing)."""
        from services.common.store.base import sha256_file

        # The options (endpoint, keys) are S3's; a file:// adapter takes none.
        options = self.store_options if uri.lower().startswith("s3://") else {}
        try:
            store = self.roots.open(uri, field="uri", **options)
            keys = store.dir_keys("", max_files=self.roots.max_files, max_bytes=self.roots.max_bytes)
            if not keys:
                raise NotFound(f"no objects under {store.uri('')}")
            files = [(key, (info := store.stat(key)).sha256, info.size) for key in keys]
        except NotFound as exc:
            raise NotFound(f"no adapter at {uri}: {exc.message}", field="uri") from exc
        digest = content_digest(files)
        dest = self.cache_dir / digest[:32]
        if dest.is_dir():
            os.utime(dest)  # recently used: pruned last
            return dest, digest
        tmp = self.cache_dir / f".tmp-{uuid.uuid4().hex}"
        try:
            for key, sha, _ in files:
                local = store.get_file(key, tmp.joinpath(*key.split("/")))
                if sha256_file(local)[0] != sha:
                    raise FailedPrecondition(f"{uri}: {key} changed while it was fetched; retry", field="uri")
            if not (tmp / "adapter_config.json").exists():
                raise FailedPrecondition(f"{uri} holds no adapter_config.json: not a PEFT adapter", field="uri")
            check_adapter_config(tmp / "adapter_config.json", uri)
            try:
                os.rename(tmp, dest)
            except OSError:  # a concurrent fetch of the same content won; its copy is as good
                if not dest.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.prune(keep=dest)
        return dest, digest

    def prune(self, keep: Path | None = None) -> None:
        """Delete cached copies, least recently used first, until the cache holds at most `max_cache_bytes`;
        never `keep` nor the copy of a loaded adapter (the engine may read it again)."""
        in_use = {a.path for a in list(self._loaded.values())} | {keep}
        copies = []
        for path in self.cache_dir.iterdir():
            if path.is_dir() and not path.name.startswith(".tmp-"):
                copies.append((path.stat().st_mtime, path, dir_size(path)))
        total = sum(size for _, _, size in copies)
        for _, path, size in sorted(copies):
            if total <= self.max_cache_bytes:
                break
            if path not in in_use:
                shutil.rmtree(path, ignore_errors=True)
                total -= size
                log.info("pruned cached adapter copy %s (%d bytes; cache over its limit)", path.name, size)

    # -- loading --------------------------------------------------------------------------------------------

    def loaded(self) -> list[LoadedAdapter]:
        return list(self._loaded.values())

    async def load(self, name: str, uri: str) -> LoadedAdapter:
        if not name:
            raise InvalidArgument("must name the adapter", field="name")
        if not ADAPTER_NAME.fullmatch(name):
            # PEFT uses the name as a module name: no dots, slashes or spaces.
            raise InvalidArgument(f"{name!r}: use letters, digits, '_' and '-' only", field="name")
        if name.startswith(URI_NAME_PREFIX):
            raise InvalidArgument(f"names starting with {URI_NAME_PREFIX!r} are reserved for adapters loaded "
                                  "by URI; pass the URI as the adapter instead", field="name")  # fmt: skip
        if not uri:
            raise InvalidArgument("must be the adapter's artifact URI", field="uri")
        async with self._lock:
            existing = self._loaded.get(name)
            if existing and uri in existing.spellings:
                existing.last_used = time.monotonic()
                return existing
            path, digest = await asyncio.to_thread(self.fetch, uri)
            if existing:
                if existing.digest != digest:
                    raise AlreadyExists(
                        f"adapter {name!r} is already loaded from {existing.uri} (other content); unload it first",
                        field="name",
                    )
                _remember(existing, uri)
                return existing
            return await self._register(name, uri, path, digest)

    async def _load_by_uri(self, uri: str) -> LoadedAdapter:
        """The loaded adapter holding the content at `uri` (under any name), loading it as `uri-<digest>`."""
        path, digest = await asyncio.to_thread(self.fetch, uri)
        entry = next((a for a in self._loaded.values() if a.digest == digest), None)
        if entry is None:
            entry = await self._register(uri_adapter_name(digest), uri, path, digest)
        _remember(entry, uri)
        return entry

    async def _register(self, name: str, uri: str, path: Path, digest: str) -> LoadedAdapter:
        """Load into the engine, then record: a load that fails leaves nothing registered here (and the
        backend rolls back its own half), so a retry starts clean."""
        while len(self._loaded) >= self.max_loaded:
            await self._evict_one()
        await asyncio.to_thread(self._engine_load, name, str(path))
        entry = self._loaded[name] = LoadedAdapter(name, uri, path, digest, last_used=time.monotonic())
        _remember(entry, uri)
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
                entry = next((a for a in self._loaded.values() if ref in a.spellings), None)
                if entry is None:
                    try:
                        entry = await self._load_by_uri(ref)
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


def _remember(entry: LoadedAdapter, uri: str) -> None:
    if len(entry.spellings) < MAX_SPELLINGS:
        entry.spellings.add(uri)
