"""The study config: schema (pydantic), YAML loading with line-accurate errors, docs and hashing.

Usage: `study = load_config("configs/smoke.yaml")`, then `config_hash(study.training)` for an artifact key.
"""

from services.common.config.data import ConversationSource, DataConfig, MixRecipe, MixSpec, parse_mix
from services.common.config.docs import canonical_json, config_hash, dump_schema, schema_markdown
from services.common.config.evaluation import ChatTask, EvaluationConfig, Tasks, XcsqaTask, XnliTask, XquadTask
from services.common.config.loader import ConfigError, ConfigIssue, load_config, parse_config
from services.common.config.schema import (
    BaseModelConfig,
    JudgeConfig,
    ReportConfig,
    ServicesConfig,
    StudyConfig,
    TinyRandomModel,
    TrainingConfig,
)

__all__ = [
    "BaseModelConfig",
    "ChatTask",
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
    "Tasks",
    "TinyRandomModel",
    "TrainingConfig",
    "XcsqaTask",
    "XnliTask",
    "XquadTask",
    "canonical_json",
    "config_hash",
    "dump_schema",
    "load_config",
    "parse_config",
    "parse_mix",
    "schema_markdown",
]
