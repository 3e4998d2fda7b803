"""Store URIs and the backend registry: `open_store("s3://bucket/prefix")`, `open_store("/data")`.

Backends register by URI scheme in `SCHEMES` (a `services.common.registry.Registry`; a plain path is
the `file` scheme). The built-in ones are named by import path and imported only when a URI asks for
them, so a process that only uses the local store never imports the S3 client.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from services.common.errors import InvalidArgument
from services.common.registry import Registry
from services.common.store.base import ArtifactStore, validate_prefix


@dataclass(frozen=True)
class StoreLocation:
    """A parsed store URI: `scheme`, the `bucket` (S3; '' for files) and a `path`
    (files: absolute directory; S3: key prefix without leading or trailing '/')."""

    scheme: str
    bucket: str
    path: str


# Every scheme, built-in or added, is an entry of the one extension-point registry.
SCHEMES: Registry[type[ArtifactStore]] = Registry("store scheme", base=ArtifactStore, field="uri")
SCHEMES.register_lazy("file", "services.common.store.local:LocalStore")
SCHEMES.register_lazy("s3", "services.common.store.s3:S3Store")


def register_backend(scheme: str, backend: type[ArtifactStore] | str | None = None):
    """Register a backend class (or its `"module:Class"` path) for `scheme` (case-insensitive).

    Usable as a decorator: `@register_backend("gs")` above a class with a classmethod
    `from_location(location: StoreLocation, **options) -> ArtifactStore`.
    """
    scheme = scheme.lower()
    if isinstance(backend, str):
        SCHEMES.register_lazy(scheme, backend)
        return backend
    decorator = SCHEMES.register(scheme)
    return decorator(backend) if backend is not None else decorator


def backend_for(scheme: str) -> type[ArtifactStore]:
    return SCHEMES.get(scheme.lower())


def parse_uri(uri: str) -> StoreLocation:
    """Parse `s3://bucket[/prefix]`, `file:///abs/dir`, or a plain path (local, made absolute)."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidArgument("must be a non-empty store URI or path", field="uri")
    if "\x00" in uri:  # no file system takes a NUL; Path.resolve would raise ValueError
        raise InvalidArgument("must not contain a NUL character", field="uri")
    if "://" not in uri and not uri.startswith("file:"):
        return StoreLocation("file", "", str(Path(uri).expanduser().resolve()))
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise InvalidArgument(f"{uri!r}: query and fragment are not allowed", field="uri")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidArgument(f"{uri!r}: only local file URIs (file:///path) are supported", field="uri")
        path = unquote(parts.path)
        if "\x00" in path:
            raise InvalidArgument(f"{uri!r}: must not contain a NUL character (%00)", field="uri")
        if not path.startswith("/"):
            raise InvalidArgument(f"{uri!r}: a file URI needs an absolute path", field="uri")
        return StoreLocation("file", "", str(Path(path).resolve()))
    if scheme == "s3":
        if not parts.netloc:
            raise InvalidArgument(f"{uri!r}: missing bucket (s3://bucket/prefix)", field="uri")
        prefix = parts.path.strip("/")
        validate_prefix(prefix, field="uri")
        return StoreLocation("s3", parts.netloc, prefix)
    backend_for(scheme)  # raises for unknown schemes
    return StoreLocation(scheme, parts.netloc, parts.path.strip("/"))


def open_store(uri: str, **options: Any) -> ArtifactStore:
    """The store at `uri`; `options` go to the backend (e.g. S3 endpoint/credentials overrides)."""
    location = parse_uri(uri)
    return backend_for(location.scheme).from_location(location, **options)


def open_object(uri: str, **options: Any) -> tuple[ArtifactStore, str]:
    """Split an artifact URI (as carried in gRPC messages) into a store and a key.

    S3: the store is the bucket; files: the store is the parent directory.
    """
    location = parse_uri(uri)
    if location.scheme == "file":
        path = Path(location.path)
        if path == path.parent:
            raise InvalidArgument(f"{uri!r} names no object", field="uri")
        store_uri, key = str(path.parent), path.name
    else:
        if not location.path:
            raise InvalidArgument(f"{uri!r} names no object", field="uri")
        store_uri, key = f"{location.scheme}://{location.bucket}", location.path
    return open_store(store_uri, **options), key
