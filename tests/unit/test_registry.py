"""The one extension-point registry: unique names, an optional base class, lazy entries, every user."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.common.registry import Registry


class Base:
    pass


class Impl(Base):
    pass


INSTANCE = Impl()
NOT_A_BASE = object()


def test_registering_a_name_twice_raises_naming_kind_and_name():
    reg: Registry[type[Base]] = Registry("widget")
    reg.register("a")(Impl)
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a")(Impl)
    with pytest.raises(ValueError, match="widget 'a'"):
        reg.register_lazy("a", f"{__name__}:Impl")
    with pytest.raises(ValueError, match="widget 'b'"):
        reg.register("c", "b", "b")(Impl)  # an alias clashing with itself
    assert reg.names() == ["a"], "a refused registration adds none of its names"


def test_base_is_checked_on_registration():
    reg: Registry[type[Base]] = Registry("widget", base=Base)
    reg.register("class")(Impl)
    reg.register("instance")(INSTANCE)
    with pytest.raises(TypeError, match="widget 'bad'.*not a Base"):
        reg.register("bad")(int)
    assert "bad" not in reg


def test_lazy_entries_are_checked_when_first_resolved():
    reg: Registry[type[Base]] = Registry("widget", base=Base)
    reg.register_lazy("good", f"{__name__}:Impl", "alias")
    reg.register_lazy("bad", f"{__name__}:NOT_A_BASE")
    assert reg.get("good") is Impl and reg.get("alias") is Impl
    with pytest.raises(TypeError, match="widget 'bad'"):
        reg.get("bad")


def test_unknown_names_blame_the_field():
    reg: Registry[type[Base]] = Registry("store scheme", field="uri")
    reg.register("file")(Impl)
    with pytest.raises(InvalidArgument, match=r"unknown store scheme 'gs' \(known: file\)") as err:
        reg.get("gs")
    assert err.value.field == "uri"


def test_every_registry_resolves_its_entries_against_its_base():
    """The project's extension points, each entry resolved (the lightweight ones: no torch, vLLM or gRPC)."""
    from flows.evals.registry import TASKS
    from services.common.store import SCHEMES
    from services.generator.backends import BACKENDS
    from services.judge.providers import PROVIDERS

    assert {"chat", "xquad", "xcsqa", "xnli"} <= set(TASKS.names())  # plugins loaded by other tests may add more
    for name in TASKS.names():
        TASKS.get(name)
    assert SCHEMES.get("file").scheme == "file" and "s3" in SCHEMES
    assert set(BACKENDS.names()) == {"hf", "vllm"} and BACKENDS.base.__name__ == "Engine"
    assert {"openai", "generator"} <= set(PROVIDERS.names()) and PROVIDERS.get("openai").name == "openai"
