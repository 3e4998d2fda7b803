"""The embedded default store: a local directory, one file per object.

Atomicity: an object is written to a hidden temp file in its final directory, fsynced, then
`os.replace`d over the key, which POSIX makes atomic; a writer killed before that leaves only a
hidden `.~<name>.<random>.part` file, which `list` never shows.

Content hash: kept in a hidden sidecar `.~<name>.sha256` holding the hash together with the size,
mtime and inode of the file it describes. Object and sidecar cannot be replaced in one step, so a
sidecar that does not match its file (a crash between the two renames, two racing writers, an
object copied in by hand) is recognised and the hash recomputed from the content: a stale hash is
never reported. Only a put writes a sidecar: reading never writes beside what it reads (an input may
be anyone's file). A hash computed on read is kept in `hash_cache`, a directory of the reader's own,
when one is given (`open_store(uri, hash_cache=...)`), else recomputed on the next `stat`.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat as stat_mod
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from services.common.errors import FailedPrecondition, NotFound
from services.common.store.base import (
    CHUNK_SIZE,
    RESERVED_PREFIX,
    ArtifactStore,
    ObjectInfo,
    validate_key,
    validate_prefix,
)

if TYPE_CHECKING:
    from services.common.store.uri import StoreLocation


def _read_chunks(f, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    while chunk := f.read(chunk_size):
        yield chunk


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; without it a power cut can undo a completed put.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore(ArtifactStore):
    """Objects under `root` (created on first write)."""

    scheme = "file"

    def __init__(self, root: str | os.PathLike[str], *, hash_cache: str | os.PathLike[str] | None = None):
        self.root = Path(root).expanduser().resolve()
        self.hash_cache = Path(hash_cache) if hash_cache is not None else None

    @classmethod
    def from_location(cls, location: StoreLocation, **options: Any) -> LocalStore:
        return cls(location.path, **options)

    # -- paths --------------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(f"{RESERVED_PREFIX}{path.name}.sha256")

    def _cache_record(self, path: Path) -> Path | None:
        """Where a hash computed on read is kept: in the reader's `hash_cache`, never beside the object."""
        if self.hash_cache is None:
            return None
        return self.hash_cache / f"{hashlib.sha256(str(path).encode()).hexdigest()[:32]}.json"

    def uri(self, key: str = "") -> str:
        validate_prefix(key, field="key")
        return "file://" + quote(self.root.as_posix() + ("/" + key if key else ""), safe="/")

    # -- writing ------------------------------------------------------------------------------------

    def _open_temp(self, key: str, path: Path) -> tuple[int, str]:
        # A concurrent delete may prune the empty parent between mkdir and mkstemp: retry.
        for attempt in range(3):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                return tempfile.mkstemp(dir=path.parent, prefix=f"{RESERVED_PREFIX}{path.name}.", suffix=".part")
            except (FileExistsError, NotADirectoryError) as exc:
                raise FailedPrecondition(
                    f"cannot store {key!r}: a parent of it is already an object", field="key"
                ) from exc
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        path = self._path(key)
        fd, tmp = self._open_temp(key, path)
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    digest.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
                os.fchmod(f.fileno(), 0o644)
                st = os.fstat(f.fileno())
            try:
                os.replace(tmp, path)
            except IsADirectoryError as exc:
                raise FailedPrecondition(f"cannot store {key!r}: it is a prefix of other objects", field="key") from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
        sha = digest.hexdigest()
        self._write_sidecar(path, sha, st)
        return self._info(key, st, sha)

    def put_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        src = Path(path)
        if not src.is_file():
            raise NotFound(f"{src} is not a file", field="path")
        with open(src, "rb") as f:
            return self.put_stream(key, _read_chunks(f))

    def _write_sidecar(self, path: Path, sha: str, st: os.stat_result, sidecar: Path | None = None) -> None:
        record = {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}
        sidecar = sidecar or self._sidecar(path)
        # No fsync: a torn or lost sidecar is detected by `_cached_sha` and recomputed.
        tmp = sidecar.with_name(f"{sidecar.name}.{os.getpid()}.{id(record):x}.part")
        try:
            sidecar.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(tmp, sidecar)
        except OSError:
            tmp.unlink(missing_ok=True)  # best effort: the hash can always be recomputed

    # -- reading ------------------------------------------------------------------------------------

    def _info(self, key: str, st: os.stat_result, sha: str) -> ObjectInfo:
        modified = datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC)
        return ObjectInfo(key=key, size=st.st_size, sha256=sha, uri=self.uri(key), modified=modified)

    def _cached_sha(self, path: Path, st: os.stat_result) -> str | None:
        for record_path in (self._sidecar(path), self._cache_record(path)):
            sha = self._recorded_sha(record_path, st) if record_path is not None else None
            if sha is not None:
                return sha
        return None

    @staticmethod
    def _recorded_sha(record_path: Path, st: os.stat_result) -> str | None:
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict):
            return None
        described = (record.get("size"), record.get("mtime_ns"), record.get("ino"))
        if described != (st.st_size, st.st_mtime_ns, st.st_ino):
            return None
        sha = record.get("sha256")
        return sha if isinstance(sha, str) else None

    def _open(self, key: str):
        path = self._path(key)
        try:
            f = open(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(f"no object {self.uri(key)}") from exc
        return path, f

    def _regular(self, key: str) -> tuple[Path, os.stat_result]:
        """The object's path and stat; NotFound unless it is a regular file."""
        path = self._path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound(f"no object {self.uri(key)}") from exc
        if not stat_mod.S_ISREG(st.st_mode):
            raise NotFound(f"no object {self.uri(key)}")
        return path, st

    def stat(self, key: str) -> ObjectInfo:
        path, st = self._regular(key)
        sha = self._cached_sha(path, st)
        if sha is None:
            # Hash and stat the same open file, so the record describes what was hashed.
            path, f = self._open(key)
            with f:
                st = os.fstat(f.fileno())
                digest = hashlib.sha256()
                for chunk in _read_chunks(f):
                    digest.update(chunk)
            sha = digest.hexdigest()
            record_path = self._cache_record(path)
            if record_path is not None:
                self._write_sidecar(path, sha, st, record_path)
        return self._info(key, st, sha)

    def size(self, key: str) -> int:
        return self._regular(key)[1].st_size

    def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        _, f = self._open(key)

        def chunks() -> Iterator[bytes]:
            with f:
                yield from _read_chunks(f, chunk_size)

        return chunks()

    def _keys(self, prefix: str) -> Iterator[str]:
        parent = prefix.rpartition("/")[0]
        start = self.root.joinpath(*parent.split("/")) if parent else self.root
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(RESERVED_PREFIX)]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(RESERVED_PREFIX):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    yield key

    # -- deleting -----------------------------------------------------------------------------------

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            if not path.is_dir():
                path.unlink(missing_ok=True)
        except NotADirectoryError:
            return
        self._sidecar(path).unlink(missing_ok=True)
        # Prune directories left empty, so a deleted prefix can later become an object key.
        parent = path.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:  # not empty, already gone, or not ours to remove: stop pruning
                break
            parent = parent.parent
