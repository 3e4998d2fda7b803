"""Calls routed by key over a service's replicas: one typed client per replica, picked by `KeyRouter`.

A channel's round_robin spreads calls blindly; a generator does better when the shards of one adapter go
to one replica, which then loads that adapter once. `ReplicaSet` resolves the address to its replicas
the way the channel would (a list of replicas, or a `dns:///name:port` name's A records, asking the
DNS server it names if any), keeps one client per replica, and sends each call by its key:

    with ReplicaSet("dns:///generator-headless:50052", GeneratorClient) as replicas:
        replicas.routed(adapter_uri).generate_all(prompts, params, adapter=adapter_uri)
        replicas.routed()  # {"10.0.0.7:50052": {"calls": 12, "keys": [...]}, ...}

It resolves again every `resolve_every` seconds (a scale-up joins) and after a replica answers
UNAVAILABLE, which also sends that call on to the next replica. A plain `host:port` is one replica.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from services.common import errors
from services.common.config.types import grpc_target
from services.common.hash_ring import KeyRouter

C = TypeVar("C")
T = TypeVar("T")

RESOLVE_EVERY_S = 30.0  # gRPC's own minimum between DNS resolutions


def names_replicas(address: str) -> bool:
    """Whether `address` may stand for several replicas: a list of them, or a `dns:` name (a headless
    Service). A plain `host:port` is one server, whatever its name resolves to (`localhost`: ::1 and
    127.0.0.1 are the same server)."""
    return grpc_target(address).split(":", 1)[0] in ("ipv4", "ipv6", "dns")


def resolve_replicas(address: str) -> list[str]:
    """The `host:port` of each replica `address` names: a list's entries, a `dns:` name's A records (from
    the DNS server in the target's authority, `dns://10.0.0.10:53/name:port`, else the system's), or the
    address itself for anything else (one replica). Raises `errors.Unavailable` when a name has no records."""
    target = grpc_target(address)
    scheme, _, rest = target.partition(":")
    if scheme in ("ipv4", "ipv6") and rest:
        return [part.strip() for part in rest.split(",")]
    if scheme != "dns":
        return [address]
    parts = urlsplit(target)  # dns:///name:port, dns://authority/name:port
    name, sep, port = parts.path.lstrip("/").rpartition(":")
    if not sep:  # no port: gRPC's default
        name, port = port, "443"
    try:
        ips = _a_records(name, parts.netloc)
    except (OSError, ValueError) as exc:
        raise errors.Unavailable(f"cannot resolve {name!r} ({address}): {exc}") from exc
    if not ips:
        raise errors.Unavailable(f"{name!r} has no A records ({address})")
    return [f"{ip}:{port}" for ip in ips]


def _a_records(name: str, authority: str) -> list[str]:
    if not authority:
        infos = socket.getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
        return sorted({info[4][0] for info in infos})
    import dns.exception  # dnspython (the `flows` extra): only a target that names its DNS server needs it
    import dns.resolver

    host, _, port = authority.rpartition(":") if ":" in authority else (authority, "", "53")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port, resolver.lifetime = [host], int(port), 5.0
    try:
        return sorted(record.address for record in resolver.resolve(name, "A", search=False))
    except dns.exception.DNSException as exc:
        raise OSError(str(exc)) from exc


class ReplicaSet(Generic[C]):
    """One client per replica of `address` (made by `make_client(replica_address)`), calls routed by key."""

    def __init__(
        self,
        address: str,
        make_client: Callable[[str], C],
        *,
        load_factor: float = 1.25,
        resolve_every: float = RESOLVE_EVERY_S,
        resolve: Callable[[str], list[str]] = resolve_replicas,
    ):
        self.address = address
        self._make_client = make_client
        self._resolve = resolve
        self.resolve_every = resolve_every
        self._lock = threading.Lock()
        self._clients: dict[str, C] = {}
        self._closed = False
        self._resolved_at = float("-inf")
        self.router = KeyRouter(load_factor=load_factor)
        self.refresh()

    def refresh(self) -> list[str]:
        """Resolve the address again; new replicas join the routing, gone ones leave it. A failed resolution
        keeps the replicas known (or, before any, routes everything to the address as one replica)."""
        try:
            replicas = self._resolve(self.address)
        except errors.Unavailable:
            replicas = self.router.members or [self.address]
        with self._lock:
            self._resolved_at = time.monotonic()
            if self._closed:  # calls after `close` fail on the closed clients, as a closed channel's do
                return self.router.members
            for replica in replicas:
                if replica not in self._clients:
                    self._clients[replica] = self._make_client(replica)
        self.router.set_members(replicas)
        return replicas

    @contextmanager
    def client_for(self, key: str, exclude: tuple[str, ...] = ()) -> Iterator[tuple[str, C]]:
        """The replica (and its client) a call of `key` goes to, counted in flight while the block runs."""
        if time.monotonic() - self._resolved_at > self.resolve_every:
            self.refresh()
        replica = self.router.acquire(key, exclude)
        if replica is None:
            raise errors.Unavailable(f"every replica of {self.address} failed: {', '.join(exclude)}")
        try:
            yield replica, self._clients[replica]
        finally:
            self.router.release(replica)

    def call(self, key: str, fn: Callable[[C], T]) -> T:
        """`fn(client)` on the replica for `key`; on UNAVAILABLE, once more on each other replica in turn."""
        failed: tuple[str, ...] = ()
        while True:
            with self.client_for(key, failed) as (replica, client):
                try:
                    return fn(client)
                except errors.Unavailable:
                    if len(failed) + 1 >= len(self.router.members):
                        raise
                    failed += (replica,)
            self.refresh()  # the replica may be gone for good (a pod scaled away)

    def routed(self, key: str) -> Routed:
        """A stand-in for the typed client whose every call goes through `call(key, ...)`."""
        return Routed(self, key)

    def clients(self) -> dict[str, C]:
        with self._lock:
            return dict(self._clients)

    def close(self) -> None:
        with self._lock:
            self._closed, clients = True, list(self._clients.values())
        for client in clients:
            client.close()  # type: ignore[attr-defined]

    def __enter__(self) -> ReplicaSet[C]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Routed:
    """The client's methods, each run whole on the replica its key routes to (an iterator it returns is
    collected there, so a stream that fails is sent on from its start, not half read)."""

    def __init__(self, replicas: ReplicaSet[Any], key: str):
        self._replicas, self._key = replicas, key

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def routed_call(*args: Any, **kwargs: Any) -> Any:
            def on(client: Any) -> Any:
                result = getattr(client, name)(*args, **kwargs)
                return list(result) if isinstance(result, Iterator) else result

            return self._replicas.call(self._key, on)

        return routed_call
