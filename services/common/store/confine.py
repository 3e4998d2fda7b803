"""Where a service may read and write artifacts that its callers name by URI.

A caller's URI is not a licence to touch the service's file system: `StoreRoots.check` admits `file://`
only under the configured roots (by default the service's own data directory and its artifact store) and
`s3://` only in the configured buckets, and refuses everything else with the same PERMISSION_DENIED
whether the path exists or not, before touching it (a caller learns nothing about files outside).
Finished artifacts are written once: `check_write_once` refuses an output prefix inside, or holding, one
(a finished artifact's directory holds `manifest.json`, written last).

    roots = StoreRoots(file_roots=(Path("/data"),), s3_buckets=("artifacts",))
    roots.check("file:///etc", field="spec.dataset_uri")              # PermissionDenied naming the field
    store = roots.open("s3://artifacts/datasets/mix", field="uri")    # checked, then opened
    check_write_once("s3://artifacts/models/m/job/adapter", field="spec.output_uri")  # AlreadyExists if done
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied
from services.common.store.base import DEFAULT_MAX_DIR_BYTES, DEFAULT_MAX_DIR_FILES, ArtifactStore
from services.common.store.local import LocalStore
from services.common.store.uri import StoreLocation, open_store, parse_uri

COMPLETE_MARKER = "manifest.json"  # written last into a finished artifact's directory (trainer, data flow)


def _resolved(paths: Iterable[str | os.PathLike[str]]) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser().resolve() for p in paths)


@dataclass(frozen=True)
class StoreRoots:
    """The locations one service may use: `file_roots` (None = anywhere, for a user's own CLI) and
    `s3_buckets` (None = any bucket its S3 credentials reach); directory inputs at most `max_files` objects
    and `max_bytes`; hashes computed on read kept in `hash_cache` (the service's own directory)."""

    file_roots: tuple[Path, ...] | None = None
    s3_buckets: tuple[str, ...] | None = None
    max_files: int = DEFAULT_MAX_DIR_FILES
    max_bytes: int = DEFAULT_MAX_DIR_BYTES
    hash_cache: Path | None = field(default=None)

    def __post_init__(self) -> None:
        if self.file_roots is not None:
            object.__setattr__(self, "file_roots", _resolved(self.file_roots))
        if self.s3_buckets is not None:
            object.__setattr__(self, "s3_buckets", tuple(self.s3_buckets))

    @classmethod
    def for_service(cls, settings: Any, *data_dirs: str | os.PathLike[str], hash_cache: Path | None = None):
        """The roots of a service from its `ServerSettings` (`file_roots`, `s3_buckets`, `max_input_files`,
        `max_input_bytes`); unset roots default to `data_dirs` and the service's own local store."""
        roots = settings.file_roots
        if roots is None:
            roots = list(data_dirs)
            store = parse_uri(settings.store_uri)
            if store.scheme == "file":
                roots.append(store.path)
        return cls(
            file_roots=_resolved(roots),
            s3_buckets=tuple(settings.s3_buckets) if settings.s3_buckets is not None else None,
            max_files=settings.max_input_files,
            max_bytes=settings.max_input_bytes,
            hash_cache=hash_cache,
        )

    def allows(self, location: StoreLocation) -> bool:
        if location.scheme == "file":
            if self.file_roots is None:
                return True
            path = Path(location.path)  # resolved by parse_uri: a symlink out of a root is outside
            return any(path == root or root in path.parents for root in self.file_roots)
        if location.scheme == "s3":
            return self.s3_buckets is None or location.bucket in self.s3_buckets
        return True  # a registered backend of the operator's own (tests' `faulty://`)

    def check(self, uri: str, *, field: str) -> StoreLocation:
        """The parsed `uri` if this service may use it; PERMISSION_DENIED naming `field` otherwise, with
        one message whether or not anything exists there."""
        try:
            location = parse_uri(uri)
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message, field=field) from None
        except (OSError, RuntimeError):  # a path the file system cannot resolve (a symlink loop)
            location = None
        if location is None or not self.allows(location):
            raise PermissionDenied(
                f"{uri} is not a location this service may use (its file roots and S3 buckets: "
                "POLYGLOT_FILE_ROOTS, POLYGLOT_S3_BUCKETS)",
                field=field,
            )
        return location

    def open(self, uri: str, *, field: str, **options: Any) -> ArtifactStore:
        """The store at `uri`, once `check` admits it (a local one keeps its read hashes in `hash_cache`)."""
        location = self.check(uri, field=field)
        if location.scheme == "file":
            return LocalStore(location.path, hash_cache=self.hash_cache)
        return open_store(uri, **options)


def _marker_above(location: StoreLocation, roots: StoreRoots | None, options: dict[str, Any]) -> str | None:
    """The URI of a finished artifact's marker at `location` or any directory above it, if there is one."""
    if location.scheme == "file":
        path = Path(location.path)
        tops = [r for r in (roots.file_roots or ()) if path == r or r in path.parents] if roots else []
        top = max(tops, key=lambda r: len(r.parts)) if tops else Path(path.anchor)
        for directory in (path, *path.parents):
            try:
                if (directory / COMPLETE_MARKER).is_file():
                    return (directory / COMPLETE_MARKER).as_uri()
            except PermissionError:  # a directory this service may not read holds nothing it wrote
                pass
            if directory == top:
                break
        return None
    if location.scheme == "s3":
        bucket = open_store(f"s3://{location.bucket}", **options)
        parts = location.path.split("/") if location.path else []
        for depth in range(len(parts), -1, -1):
            key = "/".join([*parts[:depth], COMPLETE_MARKER])
            if bucket.exists(key):
                return bucket.uri(key)
    return None


def check_write_once(uri: str, *, field: str, roots: StoreRoots | None = None, **options: Any) -> None:
    """ALREADY_EXISTS naming `field` when writing under the prefix `uri` would write into a finished
    artifact: `uri` or a directory above it holds `manifest.json`, or some directory below it does.
    A prefix holding more than `roots.max_files` objects is no output prefix (FAILED_PRECONDITION)."""
    location = roots.check(uri, field=field) if roots else parse_uri(uri)
    found = _marker_above(location, roots, options)
    if found:
        raise AlreadyExists(
            f"{uri} is inside the finished artifact of {found}: finished artifacts are written once; "
            "choose a new output prefix",
            field=field,
        )
    store = LocalStore(location.path) if location.scheme == "file" else open_store(uri, **options)
    limit = roots.max_files if roots else DEFAULT_MAX_DIR_FILES
    for count, key in enumerate(store._keys(""), start=1):
        if key.rsplit("/", 1)[-1] == COMPLETE_MARKER:
            raise AlreadyExists(
                f"{uri} holds the finished artifact {store.uri(key)}: finished artifacts are written once; "
                "choose a new output prefix",
                field=field,
            )
        if count > limit:
            message = f"{uri} already holds more than {limit} objects: not an output prefix"
            raise FailedPrecondition(message, field=field)
