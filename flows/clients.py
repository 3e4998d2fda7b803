"""The study's handles on the four services: their typed clients, made from the config's addresses.

A generator address that names several replicas (a list, or `dns:///name:port`) also gets a `ReplicaSet`:
evaluation shards send their generator calls by adapter (`routed_by`), so each replica loads few adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from flows.config import StudyConfig
from services.common.catalog import SERVICES
from services.common.errors import PolyglotError
from services.common.replicas import ReplicaSet, names_replicas
from services.generator.client import GeneratorClient
from services.judge.client import JudgeClient
from services.lid.client import LidClient
from services.trainer.client import TrainerClient


@dataclass
class Clients:
    """The four typed clients. The annotations are real imports, not TYPE_CHECKING ones: Prefect resolves a
    task's parameter types at run time."""

    lid: LidClient
    generator: GeneratorClient
    judge: JudgeClient
    trainer: TrainerClient
    generators: ReplicaSet[GeneratorClient] | None = None  # the generator's replicas, when it names several

    @classmethod
    def connect(cls, cfg: StudyConfig) -> Clients:
        clients = {name: spec.client_class()(getattr(cfg.services, name)) for name, spec in SERVICES.items()}
        address = cfg.services.generator
        generators = ReplicaSet(address, GeneratorClient) if names_replicas(address) else None
        return cls(**clients, generators=generators)

    def routed_by(self, key: str) -> Clients:
        """These clients with every generator call sent to the replica that `key` (an adapter) routes to,
        spilling to the next when that one is busy or down; the same clients when there is one replica."""
        return self if self.generators is None else replace(self, generator=self.generators.routed(key))

    def generator_routing(self) -> list[str]:
        """One line per generator replica: the calls routed to it, the adapters they carried, and the
        adapters it holds now (its ListModels)."""
        if self.generators is None:
            return []
        lines = []
        for replica, routed in self.generators.router.routed().items():
            try:
                loaded = [m for m in self.generators.clients()[replica].list_models(timeout=5).models
                          if m.kind == "adapter"]  # fmt: skip
                holds = f"{len(loaded)} loaded now"
            except (PolyglotError, KeyError) as exc:
                holds = f"loaded now unknown ({exc})"
            keys = routed["keys"]
            shown = ", ".join(keys[:8]) + (f", ... ({len(keys) - 8} more)" if len(keys) > 8 else "")
            lines.append(f"generator {replica}: {routed['calls']} calls, {len(keys)} adapters ({shown}); {holds}")
        return lines

    def close(self) -> None:
        for field in fields(self):
            client = getattr(self, field.name)
            if client is not None:
                client.close()
