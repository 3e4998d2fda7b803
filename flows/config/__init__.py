"""The study config: schema (pydantic), YAML loading with line-accurate errors, docs and hashing.

Usage: `study = load_config("configs/smoke.yaml")`, then `config_hash(study.training)` for an artifact key.
"""

from flows.config.data import ConversationSource, DataConfig, MixRecipe, MixSpec, parse_mix
from flows.config.docs import dump_schema, schema_markdown
from flows.config.evaluation import EvaluationConfig
from flows.config.loader import ConfigError, ConfigIssue, load_config, parse_config
from flows.config.schema import (
    BaseModelConfig,
    JudgeConfig,
    ReportConfig,
    ServicesConfig,
    StudyConfig,
    TinyRandomModel,
)
from services.common.config import canonical_json, config_hash
from services.trainer.config import TrainingConfig

__all__ = [
    "BaseModelConfig",
    "ConfigError",
    "ConfigIssue",
    "ConversationSource",
    "DataConfig",
    "EvaluationConfig",
    "JudgeConfig",
    "MixRecipe",
    "MixSpec",
    "ReportConfig",
    "ServicesConfig",
    "StudyConfig",
    "TinyRandomModel",
    "TrainingConfig",
    "canonical_json",
    "config_hash",
    "dump_schema",
    "load_config",
    "parse_config",
    "parse_mix",
    "schema_markdown",
]
