"""The four services, declared once: names, ports, gRPC service, and where their settings, client and build live.

Everything that lists the services (the serve CLI, `polyglot up`, local runs, the study config's addresses)
derives from `SERVICES`. References are "module:attr" strings so that reading the catalog imports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.registry import load


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int
    metrics_port: int
    grpc_service: str
    description: str
    # Calls a client keeps in flight to the service by default (a study's `concurrency.<name>`): what one
    # replica of it serves without queueing much.
    in_flight: int
    settings: str
    client: str
    build: str

    def settings_class(self) -> type:
        """The service's own pydantic-settings class (env `POLYGLOT_<NAME>_*`)."""
        return load(self.settings)

    def client_class(self) -> type:
        return load(self.client)

    def build_function(self) -> Any:
        """`build(server: ServerSettings, settings) -> list[Registration]` (maybe async); heavy imports inside."""
        return load(self.build)


def _spec(name: str, port: int, metrics_port: int, in_flight: int, description: str) -> ServiceSpec:
    # Every service follows one layout (services/<name>/{settings,client,main}.py, `<Name>Service` in
    # protos/polyglot/v1/<name>.proto), so the references follow from the name.
    title = name.capitalize()
    return ServiceSpec(
        name=name,
        port=port,
        metrics_port=metrics_port,
        grpc_service=f"polyglot.v1.{title}Service",
        description=description,
        in_flight=in_flight,
        settings=f"services.{name}.settings:{title}Settings",
        client=f"services.{name}.client:{title}Client",
        build=f"services.{name}.main:build",
    )


# Order matters: `polyglot up --base-port P` gives the first service P, the next P+1, and so on.
SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        _spec("lid", 50051, 9451, 4, "Language identification."),
        _spec("generator", 50052, 9452, 2, "Text generation."),
        _spec("judge", 50053, 9453, 2, "LLM judge and translation."),
        _spec("trainer", 50054, 9454, 1, "LoRA fine-tuning."),
    )
}
