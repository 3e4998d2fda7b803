"""The reply cache: what changes the key, and a store round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.store import open_store
from services.judge.cache import ReplyCache, cache_key

BASE = dict(
    kind="grade",
    provider="openai",
    model="gpt-3.5-turbo",
    template_sha256="t1",
    inputs={"prompt": "p", "response": "r", "target_language": "de"},
    params={"temperature": 0.0, "seed": 0},
)


def test_key_is_stable_and_depends_on_every_part():
    key = cache_key(**BASE)
    assert key == cache_key(**{**BASE, "inputs": dict(reversed(list(BASE["inputs"].items())))})
    variants = [
        {"kind": "translate"},
        {"provider": "generator"},
        {"model": "gpt-4o"},
        {"template_sha256": "t2"},
        {"inputs": {**BASE["inputs"], "response": "r!"}},
        {"inputs": {**BASE["inputs"], "target_language": "fr"}},
        {"params": {"temperature": 0.0, "seed": 1}},
    ]
    keys = {cache_key(**{**BASE, **change}) for change in variants}
    assert key not in keys and len(keys) == len(variants)


async def test_round_trip_and_a_corrupt_object_is_a_miss(tmp_path: Path):
    store = open_store(tmp_path.as_uri())
    cache = ReplyCache(store, "judge")
    key = cache_key(**BASE)
    assert await cache.get("grade", key) is None
    await cache.put("grade", key, {"score": 5, "reasoning": "r"})
    assert (await cache.get("grade", key))["score"] == 5
    store.put_bytes(f"judge/cache/grade/{key[:2]}/{key}.json", b"{not json")
    assert await cache.get("grade", key) is None


async def test_a_paid_reply_the_store_refuses_waits_in_memory_until_it_recovers(tmp_path: Path):
    from services.common.errors import ResourceExhausted
    from tests.reliability.faults import inject

    faults, uri = inject(tmp_path / "store")
    cache = ReplyCache(open_store(uri), "judge", attempts=1, max_unsaved=1)
    key = cache_key(**BASE)
    faults.disk_full = True
    await cache.put("grade", key, {"score": 5})  # does not raise: the record is kept
    assert (await cache.get("grade", key))["score"] == 5 and len(cache.unsaved) == 1
    with pytest.raises(ResourceExhausted, match="paid replies wait in memory"):
        cache.check_room()
    faults.disk_full = False
    await cache.flush()
    assert not cache.unsaved
    assert (await ReplyCache(open_store(uri), "judge").get("grade", key))["score"] == 5
    cache.check_room()
