"""`retrying`: store operations ride out an outage (transient errors retried with back-off, up to a window);
other errors are raised at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.errors import NotFound, Unavailable
from services.common.store import LocalStore, retrying
from services.common.store.retry import StoreRetrySettings


class Blinking(LocalStore):
    """A real local store whose next `down` operations find it unreachable, as an S3 outage looks."""

    def __init__(self, root: Path, down: int):
        super().__init__(root)
        self.down = down

    def _outage(self) -> None:
        if self.down > 0:
            self.down -= 1
            raise Unavailable("cannot reach the store (test outage)")

    def put_stream(self, key, chunks):
        self._outage()
        return super().put_stream(key, chunks)

    def stream(self, key, chunk_size=1 << 20):
        self._outage()
        return super().stream(key, chunk_size)


FAST = StoreRetrySettings(retry_seconds=5, retry_max_wait_seconds=0.01)


def test_an_outage_shorter_than_the_window_is_ridden_out(tmp_path: Path):
    retries = []
    store = retrying(Blinking(tmp_path, down=3), settings=FAST, on_retry=lambda exc, n: retries.append(n))
    store.put_bytes("a/b", b"payload")
    store.inner.down = 2
    assert store.get_bytes("a/b") == b"payload"
    store.inner.down = 2
    assert store.get_file("a/b", tmp_path / "copy").read_bytes() == b"payload"
    assert retries == [1, 2, 3, 1, 2, 1, 2]


def test_past_the_window_the_outage_is_raised(tmp_path: Path):
    store = retrying(Blinking(tmp_path, down=10**6), window_seconds=0.05, settings=FAST)
    with pytest.raises(Unavailable):
        store.put_bytes("k", b"x")


def test_other_errors_are_not_retried(tmp_path: Path):
    retries = []
    store = retrying(LocalStore(tmp_path), settings=FAST, on_retry=lambda exc, n: retries.append(n))
    with pytest.raises(NotFound):
        store.get_bytes("missing")
    assert retries == []


def test_the_window_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("POLYGLOT_STORE_RETRY_SECONDS", "7.5")
    assert retrying(LocalStore(tmp_path)).window_seconds == 7.5
    assert retrying(LocalStore(tmp_path)).put_dir is not None and StoreRetrySettings().retry_seconds == 7.5
