"""A tiny name → implementation registry, in the manner of lm-evaluation-harness `@register_model`.

Entries are either registered eagerly with the decorator, or lazily as a `"module:attr"` string so that a
heavy optional dependency (vLLM, torch) is imported only when that name is chosen.

Every extension point uses it: generator backends, judge providers, evaluation tasks and store schemes.
A name is registered once (a second registration raises rather than silently replacing the first), and
a registry made with `base=` refuses entries that are not a subclass or an instance of it: eager ones
when registered, lazy ones when first resolved.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from services.common.errors import InvalidArgument

T = TypeVar("T")


def load(target: str) -> object:
    """The object a `"package.module:attr"` reference names, imported now."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


class Registry(Generic[T]):
    def __init__(self, kind: str, *, base: type | None = None, field: str | None = None):
        """`kind` names the entries in errors ("unknown judge provider 'x'"); `field` is the request
        field an unknown name is blamed on (default: `kind`)."""
        self.kind = kind
        self.base = base
        self.field = field or kind
        self._entries: dict[str, T | str] = {}

    def _add(self, keys: tuple[str, ...], entry: T | str) -> None:
        for i, key in enumerate(keys):
            if key in self._entries or key in keys[:i]:
                raise ValueError(f"{self.kind} {key!r} is already registered ({self._entries.get(key, entry)!r})")
        for key in keys:
            self._entries[key] = entry

    def _check(self, name: str, obj: object) -> None:
        if self.base is None:
            return
        if isinstance(obj, self.base) or (isinstance(obj, type) and issubclass(obj, self.base)):
            return
        raise TypeError(f"{self.kind} {name!r}: {obj!r} is not a {self.base.__name__} (subclass or instance)")

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self._check(name, obj)
            self._add((name, *aliases), obj)
            return obj

        return decorator

    def register_lazy(self, name: str, target: str, *aliases: str) -> None:
        """Register `"package.module:attr"`, imported (and checked against `base`) on first `get`."""
        self._add((name, *aliases), target)

    def get(self, name: str) -> T:
        try:
            entry = self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise InvalidArgument(f"unknown {self.kind} {name!r} (known: {known})", field=self.field) from None
        if isinstance(entry, str):
            resolved = load(entry)
            self._check(name, resolved)
            # Aliases share the target string: resolve them all at once.
            for key, value in self._entries.items():
                if value is entry:
                    self._entries[key] = resolved
            entry = resolved
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
