"""The layering rules of docs/architecture.md, checked over the code's own import graph.

- a service's core (every module of `services/<name>/` but its gRPC edge) imports no gRPC;
- flows reach services only through typed clients: nothing under `flows/` imports `polyglot.v1` or grpc;
- no service imports study code (`flows`), and the shared runtime imports no particular service;
- the package has no import cycle.

Imports inside functions count too: a lazy import is still a dependency (today's cycle was one).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.catalog import SERVICES

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "flows")
# The modules of a service that speak the wire: the servicer (messages ↔ core), the typed client and the
# process entry. Everything else in the service's folder is core.
GRPC_EDGE = {"servicer", "client", "wire", "main", "__main__"}
WIRE = ("grpc", "grpc_health", "grpc_reflection", "polyglot")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every module name `name` imports (absolute, resolved; `from pkg import sub` yields `pkg.sub`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


def _graph() -> dict[str, set[str]]:
    return {name: {dep for dep in _imports(name, path) if dep in MODULES} for name, path in MODULES.items()}


def _external(name: str) -> set[str]:
    return set(_imports(name, MODULES[name]))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph[node]):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _is_wire(module: str) -> bool:
    return module.split(".")[0] in WIRE


def test_the_graph_sees_the_packages():
    # Guards the rules below against passing vacuously on a broken walk.
    graph = _graph()
    assert {"flows.study", "services.common.server", "services.lid.core"} <= set(graph)
    assert "services.common.errors" in graph["services.common.server"] or any(
        dep.startswith("services.common") for dep in graph["services.common.server"]
    )


@pytest.mark.parametrize("service", list(SERVICES))
def test_service_core_imports_no_grpc(service: str):
    core = [
        name
        for name in MODULES
        if name.startswith(f"services.{service}.") and name.rpartition(".")[2] not in GRPC_EDGE
    ]
    assert core, f"no core modules found for {service}"
    offenders = {name: sorted(filter(_is_wire, _external(name))) for name in core}
    assert not {name: wire for name, wire in offenders.items() if wire}


def test_flows_import_no_wire_types():
    offenders = {name: sorted(filter(_is_wire, _external(name))) for name in MODULES if name.startswith("flows")}
    assert not {name: wire for name, wire in offenders.items() if wire}


def test_no_service_imports_study_code():
    graph = _graph()
    offenders = {
        name: sorted(dep for dep in deps if dep.split(".")[0] == "flows")
        for name, deps in graph.items()
        if name.startswith("services")
    }
    assert not {name: deps for name, deps in offenders.items() if deps}


def test_shared_runtime_imports_no_particular_service():
    graph = _graph()
    particular = tuple(f"services.{service}" for service in SERVICES)
    offenders = {
        name: sorted(dep for dep in deps if dep.startswith(particular))
        for name, deps in graph.items()
        if name.startswith("services.common")
    }
    assert not {name: deps for name, deps in offenders.items() if deps}


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("service", list(SERVICES))
def test_catalog_entries_resolve(service: str):
    """The catalog's references follow from each service's name: a renamed module fails here, not at deploy."""
    import importlib

    from pydantic_settings import BaseSettings

    from services.common.client import ServiceClient

    spec = SERVICES[service]
    assert issubclass(spec.settings_class(), BaseSettings)
    assert issubclass(spec.client_class(), ServiceClient)
    assert callable(spec.build_function())
    module = importlib.import_module(f"polyglot.v1.{service}_pb2")
    assert spec.grpc_service.rpartition(".")[2] in module.DESCRIPTOR.services_by_name
