"""Row 11: the adapter cache was keyed by the raw URI string: 30 spellings of one adapter made 30 copies,
never pruned. Reproduced before the fix against the real generator (tiny Llama, hf, S3 on SeaweedFS): each
spelling of one adapter's URI (a trailing slash, an upper-case scheme) and each byte-identical copy under
another key was loaded into the engine as an adapter of its own (`uri-<hash of the string>`), taking an
adapter slot and evicting others, and copies under other keys were downloaded again; nothing ever deleted
a cached copy.

Remedy (services/generator/adapters.py): a URI is resolved through the store's listing to the SHA-256 of
its files, and that content hash keys the disk copy (`cache_dir/<digest>`) and the engine's adapter
(`uri-<digest>`), so all spellings and copies share one of each; the disk cache is pruned to
`adapter_cache_max_gib` (least recently used first, never the copy of a loaded adapter).

    .venv/bin/python -m pytest tests/reliability/test_row11_adapter_cache.py -q
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from services.common.store import open_store
from services.generator.adapters import AdapterCache
from services.generator.client import GeneratorClient
from tests.fixtures.generator import make_tiny_lora

BUCKET = "polyglot-generator-tests"


@pytest.fixture(scope="module")
def row11_lora(tiny_llama_dir, tmp_path_factory) -> Path:
    """An adapter of its own (no other test loads this content)."""
    return make_tiny_lora(tiny_llama_dir, tmp_path_factory.mktemp("row11-lora"), seed=11)


def test_spellings_and_copies_of_one_adapter_share_one_slot_and_one_copy(generator_service, row11_lora, s3_server):
    options = s3_server.store_options()
    for key in ("row11/adapter", "row11-copy/adapter"):
        open_store(f"s3://{BUCKET}/models/{key}", **options).put_dir("", row11_lora)
    spellings = [
        f"s3://{BUCKET}/models/row11/adapter",
        f"s3://{BUCKET}/models/row11/adapter/",
        f"S3://{BUCKET}/models/row11/adapter",
        f"s3://{BUCKET}/models/row11-copy/adapter",
        f"s3://{BUCKET}/models/row11-copy/adapter/",
    ]
    with GeneratorClient(generator_service.address, timeout=120) as client:
        for uri in spellings:
            [completion] = client.generate_all(["Hello"], adapter=uri, max_tokens=2)
            assert completion.error is None, uri
        served = [m for m in client.list_models().models if m.uri in spellings]
    assert len(served) == 1, served  # one engine adapter for all five
    weights = (row11_lora / "adapter_model.safetensors").read_bytes()
    cached = [
        path
        for path in generator_service.generator.adapters.cache_dir.glob("*/adapter_model.safetensors")
        if path.read_bytes() == weights
    ]
    assert len(cached) == 1, cached  # one copy on disk


class EngineLog:
    """The engine side of the cache: records which adapters it holds."""

    def __init__(self):
        self.loaded: dict[str, str] = {}

    def load(self, name: str, path: str) -> None:
        self.loaded[name] = path

    def unload(self, name: str) -> None:
        del self.loaded[name]


def _adapter(root: Path, name: str, size: int) -> str:
    path = root / name
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": 8, "lora_alpha": 16.0}))
    (path / "adapter_model.safetensors").write_bytes(name.encode() * (size // len(name)))
    return path.as_uri()


def test_the_disk_cache_is_pruned_by_size_never_taking_a_loaded_adapter(tmp_path):
    engine = EngineLog()
    size = 100_000
    cache = AdapterCache(engine.load, engine.unload, cache_dir=tmp_path / "cache", max_loaded=1,
                         max_cache_bytes=int(2.5 * size))  # fmt: skip
    uris = [_adapter(tmp_path / "store", name, size) for name in ("alpha", "bravo", "charlie", "delta")]

    async def use_each() -> list[int]:
        copies = []
        for uri in uris:
            async with cache.use(uri):
                pass
            copies.append(sum(1 for p in cache.cache_dir.iterdir() if not p.name.startswith(".")))
        return copies

    copies = asyncio.run(use_each())
    assert max(copies) <= 2  # never more than the cap holds
    [loaded] = cache.loaded()
    assert loaded.path.is_dir() and Path(engine.loaded[loaded.name]) == loaded.path  # the loaded one's copy kept
    cache.max_cache_bytes = 1  # even a cap nothing fits under leaves the loaded adapter's copy
    cache.prune()
    assert [p for p in cache.cache_dir.iterdir() if not p.name.startswith(".")] == [loaded.path]
