"""The adapter cache: fetch by URI once, LRU bound on loaded adapters, pins, errors naming the field.

The engine side is two plain functions that record what they were asked to load; the store is the real
local store (the S3 path is exercised by the integration tests against SeaweedFS).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.common.errors import AlreadyExists, FailedPrecondition, NotFound, ResourceExhausted
from services.generator.adapters import AdapterCache, uri_adapter_name
from services.generator.engine import BASE


def fake_adapter(root: Path, name: str) -> str:
    path = root / name
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text('{"r": 8}')
    (path / "adapter_model.safetensors").write_bytes(b"weights of " + name.encode())
    return path.as_uri()


class EngineLog:
    def __init__(self):
        self.loaded: dict[str, str] = {}
        self.events: list[str] = []

    def load(self, name: str, path: str) -> None:
        assert (Path(path) / "adapter_config.json").exists()
        self.loaded[name] = path
        self.events.append(f"load {name}")

    def unload(self, name: str) -> None:
        del self.loaded[name]
        self.events.append(f"unload {name}")


@pytest.fixture
def setup(tmp_path):
    engine = EngineLog()
    cache = AdapterCache(engine.load, engine.unload, cache_dir=tmp_path / "cache", max_loaded=2)
    return cache, engine, tmp_path / "store"


def run(coro):
    return asyncio.run(coro)


def test_fetch_downloads_once_into_the_cache(setup):
    cache, _, store = setup
    uri = fake_adapter(store, "a")
    first, digest = cache.fetch(uri)
    assert (first / "adapter_model.safetensors").read_bytes() == b"weights of a"
    assert first.name == digest[:32]  # keyed by content, not by the URI
    assert cache.fetch(uri) == (first, digest)
    assert not [p for p in cache.cache_dir.iterdir() if p.name.startswith(".tmp-")]


def test_fetch_errors_name_the_uri(setup):
    cache, _, store = setup
    with pytest.raises(NotFound) as err:
        cache.fetch((store / "missing").as_uri())
    assert err.value.field == "uri"
    (store / "not-an-adapter").mkdir(parents=True)
    (store / "not-an-adapter" / "weights.bin").write_bytes(b"x")
    with pytest.raises(FailedPrecondition) as err:
        cache.fetch((store / "not-an-adapter").as_uri())
    assert err.value.field == "uri"
    assert not list(cache.cache_dir.iterdir())  # nothing half-fetched is left to be trusted later


def test_least_recently_used_adapter_is_evicted(setup):
    cache, engine, store = setup
    uris = {n: fake_adapter(store, n) for n in "abc"}

    async def scenario():
        await cache.load("a", uris["a"])
        await cache.load("b", uris["b"])
        async with cache.use("a"):  # touching "a" makes "b" the least recently used
            pass
        await cache.load("c", uris["c"])

    run(scenario())
    assert set(engine.loaded) == {"a", "c"}
    assert engine.events[-2:] == ["unload b", "load c"]


def test_pinned_adapters_are_never_evicted(setup):
    cache, engine, store = setup
    uris = {n: fake_adapter(store, n) for n in "abc"}

    async def scenario():
        await cache.load("a", uris["a"])
        await cache.load("b", uris["b"])
        async with cache.use("a"), cache.use("b"):
            with pytest.raises(ResourceExhausted):
                await cache.load("c", uris["c"])
        await cache.load("c", uris["c"])

    run(scenario())
    assert "c" in engine.loaded and len(engine.loaded) == 2


def test_use_loads_a_uri_on_first_use_and_rejects_unknown_names(setup):
    cache, engine, store = setup
    uri = fake_adapter(store, "a")

    async def scenario():
        # The engine name is derived from the URI: PEFT module names may not hold the URI's dots.
        async with cache.use(uri) as name:
            assert name == uri_adapter_name(cache.fetch(uri)[1]) and "." not in name
        async with cache.use(uri) as again:  # loaded once
            assert again == name
        async with cache.use(BASE) as base:
            assert base == BASE
        with pytest.raises(NotFound) as err:
            async with cache.use("nobody"):
                pass
        assert err.value.field == "adapter"
        with pytest.raises(NotFound) as err:
            async with cache.use((store / "missing").as_uri()):
                pass
        assert err.value.field == "adapter"

    run(scenario())
    assert engine.events == [f"load {uri_adapter_name(cache.fetch(uri)[1])}"]


def test_reloading_a_name_is_idempotent_but_not_a_silent_swap(setup):
    cache, engine, store = setup
    a, b = fake_adapter(store, "a"), fake_adapter(store, "b")

    async def scenario():
        await cache.load("x", a)
        await cache.load("x", a)
        with pytest.raises(AlreadyExists):
            await cache.load("x", b)
        await cache.unload("x")
        with pytest.raises(NotFound):
            await cache.unload("x")

    run(scenario())
    assert engine.events == ["load x", "unload x"]
