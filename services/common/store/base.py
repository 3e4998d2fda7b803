"""The artifact store interface: keys, object metadata and the operations every backend offers.

Every step of the study reads its inputs from and writes its outputs to the store (docs/artifact-keys.md),
and "already done?" is "does the key exist?". That only holds if no reader ever sees a half-written
object, so each backend makes a put visible all at once, and every object carries the SHA-256 of its
content so that artifacts can be identified and compared without downloading them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted

CHUNK_SIZE = 1024 * 1024
# A directory input (a base model, an adapter) is fetched whole: bounded, so that a URI naming a huge tree
# (`file:///`) is refused after counting a few thousand names, before anything is hashed or copied.
# The largest base model in the paper (Llama-2 70B in bf16) is about 140 GB in a few dozen files.
DEFAULT_MAX_DIR_FILES = 10_000
DEFAULT_MAX_DIR_BYTES = 1024**4
# S3 allows 1024 bytes per key; a segment must also fit a file name (255 bytes on common
# filesystems) with room left for the local backend's hidden temp and sidecar names.
MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 200
# Names starting with this are the backends' own (temp files, hash sidecars): never user keys.
RESERVED_PREFIX = ".~"


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows about one object, without reading it."""

    key: str
    size: int
    sha256: str  # hex digest of the content
    uri: str  # where the object lives, e.g. s3://bucket/prefix/key or file:///root/key
    modified: datetime  # timezone-aware (UTC)


def _check_segments(value: str, field: str, *, allow_partial_last: bool) -> None:
    if "\x00" in value or any(ord(c) < 0x20 for c in value):
        raise InvalidArgument(f"{value!r} contains control characters", field=field)
    if len(value.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidArgument(f"longer than {MAX_KEY_BYTES} bytes", field=field)
    if value.startswith("/"):
        raise InvalidArgument(f"{value!r} must be relative (no leading '/')", field=field)
    segments = value.split("/")
    if allow_partial_last:
        segments = segments[:-1] + ([segments[-1]] if segments[-1] else [])
    for segment in segments:
        if segment == "":
            raise InvalidArgument(f"{value!r} has an empty path segment", field=field)
        if segment in (".", ".."):
            raise InvalidArgument(f"{value!r} contains a '{segment}' segment", field=field)
        if segment.startswith(RESERVED_PREFIX):
            raise InvalidArgument(f"{value!r}: segments starting with {RESERVED_PREFIX!r} are reserved", field=field)
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidArgument(f"a segment is longer than {MAX_SEGMENT_BYTES} bytes", field=field)


def validate_key(key: str, field: str = "key") -> str:
    """Return `key` if it names an object: relative, '/'-separated, no empty, '.' or '..' segments."""
    if not isinstance(key, str) or not key:
        raise InvalidArgument("must be a non-empty string", field=field)
    _check_segments(key, field, allow_partial_last=False)
    return key


def validate_prefix(prefix: str, field: str = "prefix") -> str:
    """A listing prefix: like a key, but may be empty, end with '/', or end mid-segment."""
    if not isinstance(prefix, str):
        raise InvalidArgument("must be a string", field=field)
    if prefix:
        _check_segments(prefix, field, allow_partial_last=True)
    return prefix


def dir_prefix(prefix: str) -> str:
    """`prefix` as a directory: '' stays '', anything else ends with exactly one '/'."""
    validate_prefix(prefix)
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def join_key(prefix: str, rel: str) -> str:
    return dir_prefix(prefix) + rel


def dumps_json(obj: Any) -> bytes:
    """Stable manifest bytes: same object, same bytes (sorted keys, UTF-8, strict JSON)."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=2, allow_nan=False)
    return (text + "\n").encode("utf-8")


def sha256_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """(hex digest, size) of a local file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def write_file_atomically(dest: str | os.PathLike[str], chunks: Iterable[bytes]) -> None:
    """Write `chunks` to `dest` so that `dest` is either absent/old or complete, never partial."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f"{RESERVED_PREFIX}{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ArtifactStore(ABC):
    """A flat namespace of immutable-by-convention objects addressed by '/'-separated keys.

    Backends implement the primitives (`put_stream`, `put_file`, `stream`, `stat`, `_keys`, `delete`,
    `uri`); convenience methods are built on them here so every backend behaves the same.
    """

    scheme: str = ""

    # -- primitives -------------------------------------------------------------------------------

    @abstractmethod
    def put_stream(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        """Store the concatenation of `chunks` under `key`; visible only once complete."""

    @abstractmethod
    def put_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Store the content of the local file `path` under `key`."""

    @abstractmethod
    def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Chunks of the object's content. Raises `NotFound` at call time, not on first `next()`."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Metadata of one object; `NotFound` if absent."""

    @abstractmethod
    def _keys(self, prefix: str) -> Iterable[str]:
        """All object keys starting with `prefix` (validated), any order."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error (retries stay safe)."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """The URI of `key` in this store (what gRPC messages carry); `''` is the store's root."""

    # -- built on the primitives ------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        return self.put_stream(key, [bytes(data)])

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.stream(key))

    def get_file(self, key: str, dest_path: str | os.PathLike[str]) -> Path:
        """Download to `dest_path` atomically (a reader of `dest_path` never sees a partial file)."""
        dest = Path(dest_path)
        write_file_atomically(dest, self.stream(key))
        return dest

    def size(self, key: str) -> int:
        """The object's size in bytes; backends override it where that is cheaper than `stat` (no hash)."""
        return self.stat(key).size

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix` (a plain string prefix, as in S3), recursive,
        sorted by key (code point order = UTF-8 byte order, as S3 lists)."""
        validate_prefix(prefix)
        for key in sorted(self._keys(prefix)):
            try:
                yield self.stat(key)
            except NotFound:  # deleted between listing and stat
                continue

    def put_json(self, key: str, obj: Any) -> ObjectInfo:
        """Write a manifest with stable formatting, so equal manifests have equal hashes."""
        return self.put_bytes(key, dumps_json(obj))

    def get_json(self, key: str) -> Any:
        data = self.get_bytes(key)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FailedPrecondition(f"{self.uri(key)} is not a JSON document: {exc}") from exc

    def put_dir(self, prefix: str, local_dir: str | os.PathLike[str]) -> list[ObjectInfo]:
        """Upload every file under `local_dir` to `prefix/<relative path>` (symlinks followed).

        Objects already under `prefix` that are not in `local_dir` are left alone: artifact keys
        are content-derived, so a directory is written once; write a manifest last to mark it done.
        """
        root = Path(local_dir)
        if not root.is_dir():
            raise NotFound(f"{root} is not a directory", field="local_dir")
        base = dir_prefix(prefix)
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        return [self.put_file(validate_key(base + rel), root / rel) for rel in files]

    def dir_keys(
        self, prefix: str, *, max_files: int = DEFAULT_MAX_DIR_FILES, max_bytes: int = DEFAULT_MAX_DIR_BYTES
    ) -> list[str]:
        """The keys under the directory `prefix`, sorted; `ResourceExhausted` as soon as there are more than
        `max_files` of them or they hold more than `max_bytes` (counted while listing, before any is read)."""
        base = dir_prefix(prefix)
        found = []
        for key in self._keys(base):
            found.append(key)
            if len(found) > max_files:
                raise ResourceExhausted(f"{self.uri(base)} holds more than {max_files} files: not an artifact")
        total, present = 0, []
        for key in found:
            try:
                total += self.size(key)
            except NotFound:  # deleted since it was listed
                continue
            present.append(key)
            if total > max_bytes:
                raise ResourceExhausted(f"{self.uri(base)} holds more than {max_bytes} bytes: not an artifact")
        return sorted(present)

    def get_dir(
        self,
        prefix: str,
        local_dir: str | os.PathLike[str],
        *,
        max_files: int = DEFAULT_MAX_DIR_FILES,
        max_bytes: int = DEFAULT_MAX_DIR_BYTES,
    ) -> list[Path]:
        """Download every object under the directory `prefix` into `local_dir`; `NotFound` if none,
        `ResourceExhausted` beyond `max_files` objects or `max_bytes` (see `dir_keys`)."""
        base = dir_prefix(prefix)
        dest_root = Path(local_dir)
        written = []
        for key in self.dir_keys(base, max_files=max_files, max_bytes=max_bytes):
            dest = dest_root.joinpath(*key[len(base) :].split("/"))
            try:
                written.append(self.get_file(key, dest))
            except NotFound:  # deleted between listing and reading
                continue
        if not written:
            raise NotFound(f"no objects under {self.uri(base)}")
        return written

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri('')!r})"
