"""The study's handles on the four services: their typed clients, made from the config's addresses."""

from __future__ import annotations

from dataclasses import dataclass, fields

from flows.config import StudyConfig
from services.common.catalog import SERVICES
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

    @classmethod
    def connect(cls, cfg: StudyConfig) -> Clients:
        return cls(**{name: spec.client_class()(getattr(cfg.services, name)) for name, spec in SERVICES.items()})

    def close(self) -> None:
        for field in fields(self):
            getattr(self, field.name).close()
