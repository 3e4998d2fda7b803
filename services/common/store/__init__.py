"""The artifact store: one interface, a local-directory backend and an S3 backend.

`open_store("s3://artifacts/study1")` (or `"file:///data/artifacts"`, or a plain path) returns an
`ArtifactStore`; e.g. `store.put_json("datasets/mix/ab12/manifest.json", {...})`, then
`store.get_dir("models/llama/mix/cd34", "/tmp/model")`, or `fetch_dir_cached(store, prefix, cache_root)`
for a directory downloaded once into a local cache. Schemes are registered in `SCHEMES`. A service
opens the URIs its callers send through its `StoreRoots` (confine.py); a long writer wraps its store in
`retrying` (retry.py) to ride out an outage.
"""

from services.common.store.base import ArtifactStore, ObjectInfo, validate_key, validate_prefix
from services.common.store.cache import cached_dir, fetch_dir_cached
from services.common.store.confine import StoreRoots, check_write_once
from services.common.store.local import LocalStore
from services.common.store.retry import RetryingStore, retrying
from services.common.store.uri import (
    SCHEMES,
    StoreLocation,
    backend_for,
    open_object,
    open_store,
    parse_uri,
    register_backend,
)

__all__ = [
    "ArtifactStore",
    "LocalStore",
    "ObjectInfo",
    "RetryingStore",
    "S3Store",
    "SCHEMES",
    "StoreLocation",
    "StoreRoots",
    "backend_for",
    "cached_dir",
    "check_write_once",
    "fetch_dir_cached",
    "open_object",
    "open_store",
    "parse_uri",
    "register_backend",
    "retrying",
    "validate_key",
    "validate_prefix",
]


def __getattr__(name: str):
    # The S3 backend pulls in the minio client: import it only when asked for.
    if name == "S3Store":
        from services.common.store.s3 import S3Store

        return S3Store
    raise AttributeError(name)
