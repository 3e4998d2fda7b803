"""Generator calls routed by adapter over two real generator replicas on loopback, behind one DNS name (a
headless Service: 127.0.0.1 and 127.0.0.2, one port): shards of an adapter stick to its replica, both
replicas take calls, a replica that is down passes its calls on, and a replica DNS adds later takes calls."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.common.replicas import ReplicaSet
from services.common.settings import ServerSettings
from services.common.store import open_store
from services.generator.client import GeneratorClient
from tests.fixtures.dns import dns_server
from tests.fixtures.generator import generator_settings
from tests.integration.test_load_balancing import free_port

PROMPTS = ["### Human: Say hello.\n### Assistant:", "### Human: Name a river.\n### Assistant:"]
MIXES = ("mono", "multi-2", "multi-3", "multi-4")


@pytest.fixture(scope="module")
def adapter_uris(tiny_lora_dir, tmp_path_factory) -> list[str]:
    """Four adapters in a file store: copies of one, each with a file naming its mix, so four contents and
    four adapters to the generator (which keys adapters by content: byte-identical copies are one adapter)."""
    root = tmp_path_factory.mktemp("routed-adapters")
    uris = [(root / mix).as_uri() for mix in MIXES]
    for mix, uri in zip(MIXES, uris, strict=True):
        open_store(uri).put_dir("", tiny_lora_dir)
        open_store(uri).put_bytes("mix.txt", mix.encode())
    return uris


@contextlib.contextmanager
def generator_replica(model_dir, cache_dir, host: str, port: int) -> Iterator[object]:
    from services.common.inprocess import serve_in_thread
    from services.generator.factory import create_generator
    from services.generator.main import registrations

    generator = create_generator(generator_settings(model_dir, "hf", cache_dir, max_loaded_adapters=len(MIXES)))
    with serve_in_thread(registrations(generator), ServerSettings(host=host, port=port, metrics_port=0)):
        yield generator


@pytest.fixture(scope="module")
def replicas(tiny_llama_dir, tmp_path_factory) -> Iterator[tuple[int, dict[str, object]]]:
    """Two generator replicas on one port, at 127.0.0.1 and 127.0.0.2."""
    port = free_port()
    with contextlib.ExitStack() as stack:
        running = {
            f"{host}:{port}": stack.enter_context(
                generator_replica(tiny_llama_dir, tmp_path_factory.mktemp(f"cache-{host}"), host, port)
            )
            for host in ("127.0.0.1", "127.0.0.2")
        }
        yield port, running


def generate(replica_set: ReplicaSet, uri: str) -> list:
    results = replica_set.routed(uri).generate_all(PROMPTS, preset="chat", adapter=uri, seed=0, max_tokens=4)
    assert [r.error for r in results] == [None, None]
    return results


def client(address: str) -> GeneratorClient:
    return GeneratorClient(address, timeout=120)


def loaded_adapters(replica_set: ReplicaSet, replica: str) -> set[str]:
    """What a replica says it holds (its ListModels)."""
    return {m.uri for m in replica_set.clients()[replica].list_models().models if m.kind == "adapter"}


def test_shards_of_an_adapter_stick_to_one_replica_and_both_replicas_take_calls(replicas, adapter_uris):
    port, running = replicas
    with (
        dns_server({"generator.test": ["127.0.0.1", "127.0.0.2"]}) as dns,
        ReplicaSet(f"dns://{dns.address}/generator.test:{port}", client) as replica_set,
    ):
        assert replica_set.router.members == sorted(running)
        for _ in range(2):  # one shard at a time: each adapter's home always has room
            for uri in adapter_uris:
                generate(replica_set, uri)
        routed = replica_set.router.routed()
        assert set(routed) == set(running)  # both replicas received calls
        assert {r: len(v["keys"]) for r, v in routed.items()} == dict.fromkeys(running, 2)
        assert sorted(k for v in routed.values() for k in v["keys"]) == sorted(adapter_uris)  # none on both
        # The replicas' own account: each loaded only its own adapters, and ran the model.
        assert all(loaded_adapters(replica_set, r) == set(v["keys"]) for r, v in routed.items())
        assert all(g.engine.worker.batches_run > 0 for g in running.values())

        with ThreadPoolExecutor(4) as pool:  # four shards at once, in turns over the adapters
            list(pool.map(lambda uri: generate(replica_set, uri), adapter_uris * 2))
        calls = [v["calls"] for v in replica_set.router.routed().values()]
        assert sum(calls) == 16 and min(calls) >= 6, calls


def test_a_replica_that_is_down_passes_its_calls_to_the_next(replicas, adapter_uris):
    port, running = replicas
    down = f"127.0.0.3:{port}"  # in DNS, nothing listening
    with (
        dns_server({"generator.test": ["127.0.0.1", "127.0.0.3"]}) as dns,
        ReplicaSet(f"dns://{dns.address}/generator.test:{port}", client) as replica_set,
    ):
        assert down in replica_set.router.members
        for uri in adapter_uris:
            generate(replica_set, uri)  # every call answered, also those whose home is the one down
        assert replica_set.router.routed()[down]["calls"] >= 1
        assert set(adapter_uris) <= loaded_adapters(replica_set, f"127.0.0.1:{port}")


def test_a_replica_dns_adds_while_calls_run_takes_calls_within_the_resolution_interval(replicas, adapter_uris):
    port, _ = replicas
    late = f"127.0.0.2:{port}"
    with (
        dns_server({"generator.test": ["127.0.0.1"]}) as dns,
        ReplicaSet(f"dns://{dns.address}/generator.test:{port}", client, resolve_every=0.5) as replica_set,
    ):
        for uri in adapter_uris:
            generate(replica_set, uri)
        assert late not in replica_set.router.routed()
        dns.records["generator.test"] = ["127.0.0.1", "127.0.0.2"]  # a pod became ready
        started = time.monotonic()
        while late not in replica_set.router.routed():
            assert time.monotonic() - started < 10, "the new replica took no call"
            for uri in adapter_uris:
                generate(replica_set, uri)
        assert sorted(replica_set.router.members) == sorted([f"127.0.0.1:{port}", late])


def test_the_studys_clients_route_generation_by_adapter_and_log_each_replicas_adapters(
    replicas, adapter_uris, repo_root
):
    from flows import steps
    from flows.clients import Clients
    from flows.config import load_config
    from flows.evals import EvalItem

    port, running = replicas
    cfg = load_config(repo_root / "configs" / "smoke.yaml", {"services.generator": ",".join(running)}, tasks=["chat"])
    items = [EvalItem(id=str(n), task="chat", language="en", prompt=p) for n, p in enumerate(PROMPTS)]
    clients = Clients.connect(cfg)
    try:
        assert clients.generators is not None and clients.generators.router.members == sorted(running)
        for uri in adapter_uris:
            model = steps.TunedModel("tiny-llama", uri.rsplit("/", 1)[1], f"models/{uri[-8:]}", uri, job_id="")
            shard = steps.Shard(model, "chat", "en", 0, evalset=None)
            completions = steps._generate(cfg, clients.routed_by(uri).generator, items, shard)
            assert [c.error for c in completions] == [None, None]
        lines = clients.generator_routing()
    finally:
        clients.close()
    assert len(lines) == 2 and all(", 2 adapters (" in line for line in lines), lines
    assert sorted(line.split()[1].rstrip(":") for line in lines) == sorted(running)
