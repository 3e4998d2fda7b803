"""Store directories fetched once into a local cache: `fetch_dir_cached(store, prefix, cache_root)`.

Artifact keys are content-derived and written once, so a cached copy is reused without asking the
store again. That is only safe if a directory at the cached path is always complete: a fetch downloads
into a temporary directory beside it and renames that into place once everything (and the caller's
`check`) is done. A fetch that fails or is killed part-way leaves at most a `.tmp-*` directory, which
no lookup ever trusts; of two concurrent fetches, the second rename fails and its copy is dropped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from services.common.store.base import DEFAULT_MAX_DIR_BYTES, DEFAULT_MAX_DIR_FILES, ArtifactStore


def cached_dir(store: ArtifactStore, prefix: str, cache_root: str | os.PathLike[str]) -> Path:
    """Where `fetch_dir_cached` puts the directory `prefix` of `store` (fetched or not)."""
    return Path(cache_root) / hashlib.sha256(store.uri(prefix).encode()).hexdigest()[:32]


def fetch_dir_cached(
    store: ArtifactStore,
    prefix: str,
    cache_root: str | os.PathLike[str],
    *,
    check: Callable[[Path], None] | None = None,
    max_files: int = DEFAULT_MAX_DIR_FILES,
    max_bytes: int = DEFAULT_MAX_DIR_BYTES,
) -> Path:
    """The local copy of the directory `prefix` of `store`, downloaded on the first call.

    `check(tmp_dir)` may raise to refuse a download (not the kind of artifact expected); nothing is
    cached then. Raises `NotFound` when `prefix` holds no objects, `ResourceExhausted` (before reading
    anything) when it holds more than `max_files` objects or `max_bytes`.
    """
    dest = cached_dir(store, prefix, cache_root)
    if dest.is_dir():
        return dest
    tmp = dest.with_name(f".tmp-{uuid.uuid4().hex}")
    try:
        store.get_dir(prefix, tmp, max_files=max_files, max_bytes=max_bytes)
        if check is not None:
            check(tmp)
        try:
            os.rename(tmp, dest)
        except OSError:  # another fetch of the same directory won the race; its copy is as good
            if not dest.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
