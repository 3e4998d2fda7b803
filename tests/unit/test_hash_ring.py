"""Routing by key: homes on a consistent-hash ring with bounded loads, calls in flight bounded per replica,
replicas read from the address as the channel reads them, and a study's shards taken model by model."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.study import in_turns
from services.common.hash_ring import BoundedLoadRing, KeyRouter
from services.common.replicas import names_replicas, resolve_replicas

REPLICAS = [f"10.0.0.{i}:50052" for i in range(1, 5)]
ADAPTERS = [f"s3://polyglot/models/tiny-llama/mix-{i}/{i:04x}" for i in range(12)]


def test_a_key_keeps_its_replica_while_it_has_room_and_any_key_has_one_order_over_all_replicas():
    router = KeyRouter(REPLICAS[:2])
    for key in ADAPTERS:
        first = router.acquire(key)
        router.release(first)
        for _ in range(5):  # one call at a time: always room at home
            assert router.acquire(key) == first
            router.release(first)
    ring = BoundedLoadRing(REPLICAS)
    assert all(sorted(ring.preference(key)) == sorted(REPLICAS) for key in ADAPTERS)


@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_homes_differ_by_at_most_one_adapter_so_even_shards_spread_calls_evenly(replicas):
    router = KeyRouter(REPLICAS[:replicas])
    homes = [router.home(key) for key in ADAPTERS[:8]]
    counts = [homes.count(r) for r in REPLICAS[:replicas]]
    assert max(counts) - min(counts) <= 1, counts


@given(st.lists(st.sampled_from(ADAPTERS[:5]), min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_no_replica_holds_more_calls_in_flight_than_the_bound(keys, rnd):
    router = KeyRouter(REPLICAS[:3], load_factor=1.25)
    in_flight: list[str] = []
    for key in keys:
        cap = math.ceil(1.25 * (len(in_flight) + 1) / 3)
        in_flight.append(router.acquire(key))
        assert max(in_flight.count(r) for r in REPLICAS[:3]) <= cap
        if rnd.random() < 0.4:  # some calls end
            router.release(in_flight.pop(rnd.randrange(len(in_flight))))


def test_a_full_or_failed_home_sends_the_call_to_the_next_replica_on_the_ring():
    router = KeyRouter(REPLICAS[:2])
    key = ADAPTERS[0]
    home = router.home(key)
    other = next(r for r in REPLICAS[:2] if r != home)
    assert router.acquire(key) == home
    assert router.acquire(key) == home  # cap ceil(1.25 × 2 / 2) = 2
    assert router.acquire(key) == other  # cap ceil(1.25 × 3 / 2) = 2: home is full
    assert router.acquire(key, exclude=(home,)) == other  # home answered UNAVAILABLE
    assert router.acquire(key, exclude=tuple(REPLICAS[:2])) is None
    assert router.routed() == {home: {"calls": 2, "keys": [key]}, other: {"calls": 2, "keys": [key]}}


def test_a_new_replica_moves_only_the_keys_whose_first_choice_it_becomes():
    before, after = BoundedLoadRing(REPLICAS[:3]), BoundedLoadRing(REPLICAS)
    keys = [f"key-{i}" for i in range(400)]
    moved = [k for k in keys if before.preference(k)[0] != after.preference(k)[0]]
    assert all(after.preference(k)[0] == REPLICAS[3] for k in moved)
    assert 0.1 < len(moved) / len(keys) < 0.4  # about a quarter, not a reshuffle


@pytest.mark.parametrize(
    ("address", "replicas", "several"),
    [
        ("127.0.0.1:5001,127.0.0.1:5002", ["127.0.0.1:5001", "127.0.0.1:5002"], True),
        ("[::1]:5001,[::1]:5002", ["[::1]:5001", "[::1]:5002"], True),
        ("dns:///localhost:5001", ["127.0.0.1:5001"], True),  # A records only, as the fixture's DNS answers
        ("localhost:5001", ["localhost:5001"], False),  # one server, whatever its name resolves to
        ("unix:/run/generator.sock", ["unix:/run/generator.sock"], False),
    ],
)
def test_replicas_are_read_from_the_address_as_the_channel_reads_it(address, replicas, several):
    assert resolve_replicas(address) == replicas
    assert names_replicas(address) is several


def test_shards_are_taken_model_by_model_in_turns_keeping_their_indices():
    shards = [type("Shard", (), {"model": type("Model", (), {"key": m})})() for m in "aaabbc"]
    order = in_turns(shards)
    assert [shards[i].model.key for i, _ in order] == ["a", "b", "c", "a", "b", "a"]
    assert sorted(i for i, _ in order) == list(range(6)) and all(shards[i] is s for i, s in order)


def test_a_load_factor_below_one_is_refused():
    with pytest.raises(ValueError, match="load_factor"):
        KeyRouter(REPLICAS, load_factor=0.9)
