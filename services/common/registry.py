"""A tiny name → implementation registry, in the manner of lm-evaluation-harness `@register_model`.

Entries are either registered eagerly with the decorator, or lazily as a `"module:attr"` string so that a
heavy optional dependency (vLLM, torch) is imported only when that name is chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from services.common.errors import InvalidArgument

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            for key in (name, *aliases):
                self._entries[key] = obj
            return obj

        return decorator

    def register_lazy(self, name: str, target: str, *aliases: str) -> None:
        """Register `"package.module:attr"`, imported on first `get`."""
        for key in (name, *aliases):
            self._entries[key] = target

    def get(self, name: str) -> T:
        try:
            entry = self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise InvalidArgument(f"unknown {self.kind} {name!r} (known: {known})", field=self.kind) from None
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
