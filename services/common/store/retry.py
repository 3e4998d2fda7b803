"""A store that rides out an outage: every operation retried with back-off while the store is unreachable.

A long-running writer (a training worker uploading checkpoints for hours) must not fail for a store that
blinks: `retrying(open_store(uri))` retries each operation that raises a transient error (`Unavailable`,
`DeadlineExceeded`: services/common/errors.py `TRANSIENT`) with jittered exponential back-off, for up to
`POLYGLOT_STORE_RETRY_SECONDS` (default 60) per operation; after that the last error is raised. Errors that
a second try would not change (not found, denied, bad key) are raised at once.

    store = retrying(open_store("s3://artifacts/run"), on_retry=lambda err, n: print("retry", n, err))
    store.put_file("adapter/adapter_model.safetensors", path)      # waits out a 30 s S3 restart

An operation is retried whole: a put re-uploads from the start (a put is atomic, so nothing half-written
is ever visible), a download restarts its file. `put_stream` of a one-shot iterator cannot be replayed, so
it is retried only when `chunks` is a list or tuple.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from services.common.errors import TRANSIENT
from services.common.store.base import CHUNK_SIZE, ArtifactStore, ObjectInfo

T = TypeVar("T")
OnRetry = Callable[[BaseException, int], None]


class StoreRetrySettings(BaseSettings):
    """How long a store operation keeps retrying; from `POLYGLOT_STORE_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="POLYGLOT_STORE_", extra="ignore")

    retry_seconds: float = Field(
        60.0, ge=0, description="Retry a store operation that found the store unreachable for up to this long."
    )
    retry_max_wait_seconds: float = Field(8.0, gt=0, description="Longest pause between two tries.")


class RetryingStore(ArtifactStore):
    """`inner` with every operation retried on transient errors (see the module docstring)."""

    def __init__(
        self,
        inner: ArtifactStore,
        *,
        window_seconds: float | None = None,
        on_retry: OnRetry | None = None,
        settings: StoreRetrySettings | None = None,
    ):
        settings = settings or StoreRetrySettings()
        self.inner = inner
        self.scheme = inner.scheme
        self.window_seconds = settings.retry_seconds if window_seconds is None else window_seconds
        self.max_wait = settings.retry_max_wait_seconds
        self.on_retry = on_retry

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def report(state: RetryCallState) -> None:
            if self.on_retry is not None and state.outcome is not None:
                self.on_retry(state.outcome.exception(), state.attempt_number)

        retrying = Retrying(
            stop=stop_after_delay(self.window_seconds),
            wait=wait_random_exponential(multiplier=0.5, max=self.max_wait),  # full jitter: replicas spread out
            retry=retry_if_exception_type(TRANSIENT),
            before_sleep=report,
            reraise=True,
        )
        return retrying(fn, *args, **kwargs)

    # -- primitives ---------------------------------------------------------------------------------------

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        if isinstance(chunks, list | tuple):
            return self._call(self.inner.put_stream, key, chunks)
        return self.inner.put_stream(key, chunks)

    def put_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        return self._call(self.inner.put_file, key, path)

    def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        return self._call(self.inner.stream, key, chunk_size)

    def stat(self, key: str) -> ObjectInfo:
        return self._call(self.inner.stat, key)

    def _keys(self, prefix: str) -> Iterable[str]:
        return self._call(lambda: list(self.inner._keys(prefix)))

    def delete(self, key: str) -> None:
        self._call(self.inner.delete, key)

    def uri(self, key: str = "") -> str:
        return self.inner.uri(key)

    # -- whole operations, so that a failure part-way through a transfer is retried too --------------------

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        return self._call(self.inner.put_bytes, key, data)

    def get_bytes(self, key: str) -> bytes:
        return self._call(self.inner.get_bytes, key)

    def get_file(self, key: str, dest_path: str | os.PathLike[str]) -> Path:
        return self._call(self.inner.get_file, key, dest_path)

    def size(self, key: str) -> int:
        return self._call(self.inner.size, key)


def retrying(store: ArtifactStore, **options: Any) -> RetryingStore:
    """`store` with its operations retried across an outage (`RetryingStore` options)."""
    return store if isinstance(store, RetryingStore) else RetryingStore(store, **options)
