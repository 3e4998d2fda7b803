"""Build the generator the settings describe: the chosen backend with its model, and the adapter cache."""

from __future__ import annotations

from typing import Any

from services.generator.adapters import AdapterCache
from services.generator.backends import BACKENDS
from services.generator.core import Generator
from services.generator.settings import GeneratorSettings


def create_generator(settings: GeneratorSettings, *, store_options: dict[str, Any] | None = None) -> Generator:
    """Load the model (blocking, can take minutes for a large one). No model configured: a generator that
    answers FAILED_PRECONDITION, so the process still starts and reports healthy (e.g. `polyglot up`)."""
    if not settings.model:
        return Generator(None, None)
    engine = BACKENDS.get(settings.backend)(settings)
    adapters = AdapterCache(
        engine.load_adapter,
        engine.unload_adapter,
        cache_dir=settings.adapter_cache_dir,
        max_loaded=settings.max_loaded_adapters,
        store_options=store_options,
    )
    return Generator(engine, adapters)
