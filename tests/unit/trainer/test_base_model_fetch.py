"""A base model given by store URI is fetched once into the worker's cache (rank 0), its path known to all."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from services.common.store import LocalStore
from services.trainer.worker import fetch_base_model


def _task(ref: str, cache: Path) -> SimpleNamespace:
    return SimpleNamespace(spec=SimpleNamespace(base_model=ref), cache_dir=str(cache))


def test_a_uri_base_model_is_fetched_once_and_other_ranks_get_the_same_path(tmp_path: Path):
    store = LocalStore(tmp_path / "store")
    store.put_bytes("base/config.json", b"{}")
    task = _task(store.uri("base"), tmp_path / "cache")
    waiting = fetch_base_model(task, download=False)  # ranks > 0: the path only
    assert not Path(waiting).exists()
    fetched = fetch_base_model(task, download=True)
    assert fetched == waiting and (Path(fetched) / "config.json").read_bytes() == b"{}"
    store.delete("base/config.json")
    assert fetch_base_model(task, download=True) == fetched, "the cached copy, without the store"


def test_a_local_path_or_hub_id_is_used_as_is(tmp_path: Path):
    assert fetch_base_model(_task("meta-llama/Llama-2-7b-hf", tmp_path), download=True) == "meta-llama/Llama-2-7b-hf"
