"""Build the generator the settings describe: the chosen backend with its model, and the adapter cache."""

from __future__ import annotations

from typing import Any

from services.common.store.confine import StoreRoots
from services.generator.adapters import AdapterCache
from services.generator.backends import BACKENDS
from services.generator.core import Generator
from services.generator.limits import RequestLimits
from services.generator.settings import GeneratorSettings


def create_generator(
    settings: GeneratorSettings, *, store_options: dict[str, Any] | None = None, roots: StoreRoots | None = None
) -> Generator:
    """Load the model (blocking, can take minutes for a large one). No model configured: a generator that
    answers FAILED_PRECONDITION, so the process still starts and reports healthy (e.g. `polyglot up`)."""
    if not settings.model:
        return Generator(None, None, RequestLimits.from_settings(settings))
    engine = BACKENDS.get(settings.backend)(settings)
    adapters = AdapterCache(
        engine.load_adapter,
        engine.unload_adapter,
        cache_dir=settings.adapter_cache_dir,
        max_loaded=settings.max_loaded_adapters,
        max_cache_bytes=int(settings.adapter_cache_max_gib * 2**30),
        store_options=store_options,
        roots=roots,
    )
    return Generator(engine, adapters, RequestLimits.from_settings(settings))
