"""Consistent hashing with bounded loads: which replica takes a call, by key, so that calls of one key
(an adapter) stay on one replica while no replica takes much more than its share of the calls in flight.

Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads" (SODA 2018): each member
holds `points_per_member` points on a ring of 64-bit hashes; a key goes to the first member clockwise of
its hash that has room, where room means fewer than ceil(load_factor × (in flight + 1) / members) calls
in flight. With load_factor 1.25 no member carries more than 25 % over the average (plus rounding);
members join and leave moving only the keys next to their points.

    >>> ring = BoundedLoadRing(["10.0.0.1:50052", "10.0.0.2:50052"])
    >>> first = ring.acquire("models/tiny-llama/mono/ab12")
    >>> ring.acquire("models/tiny-llama/mono/ab12") == first  # room left: the same replica
    True
    >>> ring.release(first); ring.release(first)

Pure Python, no gRPC: the client layer (`services.common.replicas`) uses it to pick a channel.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import threading
from collections.abc import Collection, Iterable

__all__ = ["BoundedLoadRing", "KeyRouter", "ring_point"]


def _checked(load_factor: float) -> float:
    if load_factor < 1:
        raise ValueError(f"load_factor must be >= 1 (1 = no member above the average), got {load_factor}")
    return load_factor


def ring_point(text: str) -> int:
    """A stable 64-bit position (Python's `hash` is salted per process; routing must agree across them)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class BoundedLoadRing:
    """Members on a hash ring, each with a count of calls in flight; thread-safe."""

    def __init__(self, members: Iterable[str] = (), *, load_factor: float = 1.25, points_per_member: int = 100):
        self.load_factor = _checked(load_factor)
        self.points_per_member = points_per_member
        self._lock = threading.Lock()
        self._loads: dict[str, int] = {}
        self._points: list[int] = []
        self._owners: list[str] = []
        self.set_members(members)

    @property
    def members(self) -> list[str]:
        with self._lock:
            return sorted(self._loads)

    def loads(self) -> dict[str, int]:
        """Calls in flight per member."""
        with self._lock:
            return dict(self._loads)

    def set_members(self, members: Iterable[str]) -> None:
        """The members from now on: those kept keep their calls in flight; a new one starts empty; a removed
        one takes no more calls (releasing its calls in flight later is harmless)."""
        wanted = sorted(set(members))
        points = sorted((ring_point(f"{m}#{i}"), m) for m in wanted for i in range(self.points_per_member))
        with self._lock:
            self._loads = {m: self._loads.get(m, 0) for m in wanted}
            self._points = [p for p, _ in points]
            self._owners = [m for _, m in points]

    def preference(self, key: str) -> list[str]:
        """Every member, in the order a call of `key` tries them: clockwise from the key's hash."""
        with self._lock:
            return self._walk(key)

    def _walk(self, key: str) -> list[str]:
        if not self._owners:
            return []
        start = bisect.bisect(self._points, ring_point(key))
        order: dict[str, None] = {}
        for i in range(len(self._owners)):
            order.setdefault(self._owners[(start + i) % len(self._owners)])
            if len(order) == len(self._loads):
                break
        return list(order)

    def capacity(self) -> int:
        """Calls in flight a member may hold once the next call is placed."""
        with self._lock:
            return self._capacity()

    def _capacity(self) -> int:
        in_flight = sum(self._loads.values()) + 1
        return math.ceil(self.load_factor * in_flight / max(len(self._loads), 1))

    def acquire(self, key: str, exclude: Collection[str] = ()) -> str | None:
        """The member that takes a call of `key` (its count goes up until `release`): the first clockwise
        with room, not in `exclude` (replicas that just failed). None when every member is excluded."""
        with self._lock:
            candidates = [m for m in self._walk(key) if m not in exclude]
            if not candidates:
                return None
            cap = self._capacity()
            # The caps add up to at least the calls in flight, so one has room unless members are excluded;
            # then the least loaded of the rest takes it.
            chosen = next((m for m in candidates if self._loads[m] < cap), None)
            chosen = chosen or min(candidates, key=lambda m: self._loads[m])
            self._loads[chosen] += 1
            return chosen

    def release(self, member: str) -> None:
        with self._lock:
            if self._loads.get(member, 0) > 0:
                self._loads[member] -= 1


class KeyRouter:
    """Routes calls by key (an adapter) over members (replicas): each key gets a home member, placed on the
    ring with bounded loads counted in keys (load factor 1: homes differ by at most one key, so with
    shards spread evenly over keys, calls spread evenly over members); a call goes to its key's home while
    the home holds fewer than ceil(`load_factor` × average) calls in flight, else to the next member
    clockwise that does (Mirrokni et al.'s bound on calls in flight). Counts what it routed where.

        >>> router = KeyRouter(["a:1", "b:1"])
        >>> homes = {key: router.acquire(key) for key in ("mono", "multi-2")}
        >>> sorted(homes.values())  # two keys, two members: one home each
        ['a:1', 'b:1']
    """

    def __init__(self, members: Iterable[str] = (), *, load_factor: float = 1.25, points_per_member: int = 100):
        self.load_factor = _checked(load_factor)
        self.points_per_member = points_per_member
        self._lock = threading.Lock()
        self._homes: dict[str, str] = {}
        self._in_flight: dict[str, int] = {}
        self._calls: dict[str, int] = {}
        self._keys: dict[str, set[str]] = {}
        self._ring = BoundedLoadRing(load_factor=1.0, points_per_member=points_per_member)
        self.set_members(members)

    @property
    def members(self) -> list[str]:
        return self._ring.members

    def set_members(self, members: Iterable[str]) -> None:
        """New members (a scale-up, a replica gone): keys are placed anew as they come, on a ring that moves
        only the keys next to the changed members' points; calls in flight keep their counts."""
        wanted = sorted(set(members))
        with self._lock:
            if wanted == self._ring.members:
                return
            self._ring = BoundedLoadRing(wanted, load_factor=1.0, points_per_member=self.points_per_member)
            self._homes.clear()
            self._in_flight = {m: self._in_flight.get(m, 0) for m in wanted}

    def home(self, key: str) -> str | None:
        """The member a key's calls go to while it has room (placed on first use)."""
        with self._lock:
            return self._home(key)

    def _home(self, key: str) -> str | None:
        if key not in self._homes:
            member = self._ring.acquire(key)
            if member is None:
                return None
            self._homes[key] = member
        return self._homes[key]

    def acquire(self, key: str, exclude: Collection[str] = ()) -> str | None:
        """The member that takes a call of `key` (counted in flight until `release`), skipping `exclude`
        (members that just failed it); None when every member is excluded."""
        with self._lock:
            home = self._home(key)
            order = [home, *(m for m in self._ring.preference(key) if m != home)] if home else []
            candidates = [m for m in order if m not in exclude]
            if not candidates:
                return None
            cap = math.ceil(self.load_factor * (sum(self._in_flight.values()) + 1) / len(self._in_flight))
            chosen = next((m for m in candidates if self._in_flight[m] < cap), None)
            chosen = chosen or min(candidates, key=lambda m: self._in_flight[m])
            self._in_flight[chosen] += 1
            self._calls[chosen] = self._calls.get(chosen, 0) + 1
            self._keys.setdefault(chosen, set()).add(key)
            return chosen

    def release(self, member: str) -> None:
        with self._lock:
            if self._in_flight.get(member, 0) > 0:
                self._in_flight[member] -= 1

    def routed(self) -> dict[str, dict[str, object]]:
        """Per member ever routed to: calls sent and the distinct keys they carried (the adapters it loaded)."""
        with self._lock:
            return {m: {"calls": self._calls[m], "keys": sorted(self._keys[m])} for m in sorted(self._calls)}
