"""`fetch_dir_cached`: a directory downloaded once, never left half-fetched at the cached path."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.errors import FailedPrecondition, NotFound
from services.common.store import LocalStore, cached_dir, fetch_dir_cached


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    for name in ("a.json", "b.bin", "sub/c.txt"):
        store.put_bytes(f"model/{name}", name.encode())
    return store


class Killed(Exception):
    pass


class DyingStore(LocalStore):
    """Fails after writing `survive` files, as a fetch killed part-way would stop."""

    def __init__(self, root: Path, survive: int):
        super().__init__(root)
        self.left = survive

    def get_file(self, key, dest_path):
        if self.left == 0:
            raise Killed(key)
        self.left -= 1
        return super().get_file(key, dest_path)


def test_fetch_downloads_once_then_reuses_the_cache(store: LocalStore, tmp_path: Path):
    cache = tmp_path / "cache"
    first = fetch_dir_cached(store, "model", cache)
    assert first == cached_dir(store, "model", cache)
    assert sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file()) == [
        "a.json",
        "b.bin",
        "sub/c.txt",
    ]
    store.delete("model/a.json")  # a second fetch must not ask the store again
    assert fetch_dir_cached(store, "model", cache) == first and (first / "a.json").exists()
    assert [p.name for p in cache.iterdir()] == [first.name], "no temporary directory is left behind"


def test_a_fetch_killed_midway_leaves_nothing_at_the_final_path(store: LocalStore, tmp_path: Path):
    cache = tmp_path / "cache"
    dying = DyingStore(store.root, survive=2)
    with pytest.raises(Killed):
        fetch_dir_cached(dying, "model", cache)
    assert not cached_dir(store, "model", cache).exists()
    assert not [p for p in cache.iterdir() if not p.name.startswith(".tmp-")], "only temp dirs, never trusted"
    # The next fetch starts over and completes.
    assert (fetch_dir_cached(store, "model", cache) / "sub" / "c.txt").read_text() == "sub/c.txt"


def test_a_refused_check_caches_nothing(store: LocalStore, tmp_path: Path):
    def check(path: Path) -> None:
        raise FailedPrecondition(f"{path.name}: not what was expected")

    with pytest.raises(FailedPrecondition):
        fetch_dir_cached(store, "model", tmp_path / "cache", check=check)
    assert not list((tmp_path / "cache").iterdir())


def test_a_concurrent_fetch_that_lost_the_race_returns_the_winner(store: LocalStore, tmp_path: Path):
    cache = tmp_path / "cache"

    def winner_lands_first(path: Path) -> None:
        dest = cached_dir(store, "model", cache)
        if not dest.exists():
            store.get_dir("model", dest)
            (dest / "winner").write_text("")

    dest = fetch_dir_cached(store, "model", cache, check=winner_lands_first)
    assert (dest / "winner").exists() and [p.name for p in cache.iterdir()] == [dest.name]


def test_an_empty_prefix_is_not_found(store: LocalStore, tmp_path: Path):
    with pytest.raises(NotFound):
        fetch_dir_cached(store, "missing", tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
