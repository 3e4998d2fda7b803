"""The study config: one pydantic model whose fields document themselves (in the manner of TRL's configs).

Defaults are Polyglot's own choices (the `polyglot` protocol profile); `protocol.profile: paper` sets the
paper's value of every element it differs on (`polyglot fidelity CONFIG` lists them), so a study file only
states what differs. `polyglot config schema` (see `docs.py`) prints every field with its type, default
and description.

Some fields are settings of a service, not of the study: a base model's `backend`, `dtype` and
`tensor_parallel_size`, and the judge's `base_url`, `api_key_env` and `concurrency`. `polyglot study run`
hands them to the services it starts; services that already run own them, so they stay out of artifact
keys, and preflight (`flows/preflight_config.py`) checks what a running service reports against them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, create_model, field_validator, model_validator

from flows.config.data import DataConfig
from flows.config.evaluated import EvaluatedModel
from flows.config.evaluation import EvaluationConfig
from flows.config.lid import LidConfig
from flows.config.profile import ProtocolConfig
from services.common.catalog import SERVICES
from services.common.config.types import (
    Address,
    HubIdOrPath,
    LocalPath,
    OutputPath,
    Section,
    Slug,
    StoreUri,
    unique,
)
from services.common.presets import PAPER_SEEDS
from services.judge.providers import PROVIDERS
from services.trainer.config import TrainingConfig

DEFAULT_STORE = "file://./.polyglot/artifacts"


def _default_store() -> str:
    # The default is relative to the working directory (where `polyglot` runs), not to the study file.
    return (Path.cwd() / ".polyglot" / "artifacts").resolve().as_uri()


# One field per service of the catalog, so a new service gets its address here without restating it.
ServicesConfig = create_model(
    "ServicesConfig",
    __base__=Section,
    __doc__="gRPC addresses of the services (`host:port` or a gRPC target such as `dns:///lid:50051`).",
    **{
        name: (Address, Field(f"127.0.0.1:{spec.port}", description=spec.description))
        for name, spec in SERVICES.items()
    },
)


# Per service, like the addresses: how many calls the study keeps in flight to it, on top of the task
# runner's width. Settings of this run, not of a result, so no artifact key but the report's holds them.
ConcurrencyConfig = create_model(
    "ConcurrencyConfig",
    __base__=Section,
    __doc__="How many calls the study has in flight at once: per service, and tasks run side by side. Raise a "
    "service's with its replicas (`services.<name>` naming all of them).",
    task_runner_workers=(
        int,
        Field(4, ge=1, description="Prefect tasks (shards, training jobs) run at once, each in a thread."),
    ),
    **{
        name: (int, Field(spec.in_flight, ge=1, description=f"Calls in flight to {name} at once."))
        for name, spec in SERVICES.items()
    },
)


class TinyRandomModel(Section):
    """A randomly initialised Llama for pipeline checks on CPU; results from it are not findings."""

    llama_config: dict[str, Any] = Field(
        description="Keyword arguments of transformers.LlamaConfig, e.g. {hidden_size: 128, "
        "intermediate_size: 256, num_hidden_layers: 2, num_attention_heads: 2, vocab_size: 32000}."
    )
    tokenizer: LocalPath = Field(description="Directory of a tokenizer that AutoTokenizer loads offline.")
    seed: int = Field(0, ge=0, description="Seed of the random weight initialisation.")

    @field_validator("llama_config")
    @classmethod
    def _shape(cls, config: dict[str, Any]) -> dict[str, Any]:
        hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
        if isinstance(hidden, int) and isinstance(heads, int) and heads > 0 and hidden % heads:
            raise ValueError(f"hidden_size {hidden} is not divisible by num_attention_heads {heads}")
        return config


class BaseModelConfig(Section):
    name: Slug = Field(description="Short name used in artifact keys, tables and figures (e.g. llama2-7b).")
    model: HubIdOrPath | None = Field(
        None, description="Hub id (meta-llama/Llama-2-7b-hf) or local directory; omit when tiny_random is set."
    )
    tiny_random: TinyRandomModel | None = Field(None, description="Build a tiny random Llama instead of loading.")
    backend: Literal["hf", "vllm"] = Field(
        "hf",
        description="Generator backend: transformers (hf) or vllm. `study run` starts the generator with it; "
        "preflight checks a running one.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Generator weights dtype (auto: the generator's default); `study run` starts the generator "
        "with it.",
    )
    tensor_parallel_size: int = Field(
        1, ge=1, description="GPUs per model replica (vllm only); `study run` starts the generator with it."
    )

    @model_validator(mode="after")
    def _one_source(self) -> BaseModelConfig:
        if (self.model is None) == (self.tiny_random is None):
            raise ValueError("set exactly one of `model` (hub id or path) and `tiny_random`")
        if self.backend == "hf" and self.tensor_parallel_size != 1:
            raise ValueError("tensor_parallel_size > 1 needs backend: vllm")
        return self


class JudgeConfig(Section):
    provider: str = Field(
        "openai",
        description="Judge provider registered in the judge service: `openai` (any OpenAI-compatible API) "
        "or `generator` (a Polyglot generator, for offline runs).",
    )
    model: str = Field(
        "gpt-3.5-turbo",
        description="Judge model (Polyglot's default is the unpinned alias; the paper's: the gpt-3.5-turbo-1106 "
        "snapshot); for the `generator` provider, a model it serves.",
    )
    base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint; null = the provider's default. `study run` starts the judge with it.",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="Environment variable holding the API key (never the key); `study run` hands its value "
        "to the judge it starts.",
    )
    template: str = Field(
        "helpfulness",
        description="Grading template name, or an artifact URI of a template. `paper`: the paper's system and "
        "user messages (llm_judge.py), read from protocol.sources (`polyglot protocol fetch`).",
    )
    translation_template: Literal["polyglot", "paper"] = Field(
        "polyglot",
        description="The judge's Translate prompt: polyglot (templates/translate.txt) or paper (the messages of "
        "the paper's translate_with_gpt.py, read from protocol.sources).",
    )
    seed: int = Field(0, description="Sampling seed sent with every judge request (the paper's: 42).")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Judge sampling temperature (the paper's: 0).")
    json_mode: bool = Field(
        True, description="Ask for a JSON object (response_format) where the provider supports it (the paper: yes)."
    )
    repair: bool = Field(
        True,
        description="One repair request for an unparsable verdict; false = counted unparsable and dropped, as "
        "the paper's aggregation does. Honoured by the chat templates `polyglot protocol` writes.",
    )
    gate_language: Literal["target", "prompt"] = Field(
        "target",
        description="The language gate's comparison: a reply scores 1 without a judge call when its LID label differs "
        "from the target language (`target`) or from the prompt's LID label (`prompt`, the paper's code).",
    )
    concurrency: int = Field(
        8, ge=1, description="Requests the judge sends to its provider at once; `study run` starts the judge with it."
    )

    @field_validator("provider")
    @classmethod
    def _registered(cls, provider: str) -> str:
        # The judge has no RPC that lists its providers; its registry is this one.
        if provider not in PROVIDERS:
            raise ValueError(f"unknown judge provider {provider!r} (known: {', '.join(PROVIDERS.names())})")
        return provider


class ReportConfig(Section):
    formats: list[Literal["html", "markdown"]] = Field(["html", "markdown"], min_length=1, description="Reports.")
    figure_formats: list[Literal["png", "svg"]] = Field(["png", "svg"], min_length=1, description="Figures.")
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Confidence level of bootstrap intervals.")
    bootstrap_samples: int = Field(1000, ge=100, description="Bootstrap resamples for intervals and tests.")
    output_dir: OutputPath | None = Field(
        None, description="Also copy the report here; null = only the artifact store."
    )
    compare_with: LocalPath | None = Field(
        None,
        description="Another finished study's config file (e.g. paper-llama2-70b.yaml beside this one): its "
        "newest aggregate joins this study's rows for the larger-over-smaller base model figure (the paper's "
        "Fig. 7), sizes from its base models. null = this study alone (flows/report/paper_compare.py).",
    )


class StudyConfig(Section):
    """A whole study: base models × mixes × tasks × languages × seeds."""

    name: Slug = Field(description="Study name; reports and artifact keys carry it.")
    description: str = Field("", description="Free text shown at the top of the report.")
    protocol: ProtocolConfig = Field(
        default_factory=ProtocolConfig, description="The protocol profile the config starts from; the paper's sources."
    )
    artifact_store: StoreUri = Field(
        default_factory=_default_store,
        description=f"s3://bucket[/prefix] or file://<dir>; default {DEFAULT_STORE} under the working "
        "directory. A relative file:// path in the study file is relative to the file.",
    )
    services: ServicesConfig = Field(default_factory=ServicesConfig, description="Where the services listen.")
    concurrency: ConcurrencyConfig = Field(
        default_factory=ConcurrencyConfig, description="Calls in flight per service and the task runner's width."
    )
    base_models: list[BaseModelConfig] = Field(min_length=1, description="Models to tune and evaluate.")
    data: DataConfig = Field(default_factory=DataConfig, description="Tuning data and mixes.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="LoRA recipe.")
    evaluation: EvaluationConfig = Field(description="Evaluation tasks.")
    evaluate_models: list[EvaluatedModel] = Field(
        [],
        description="Models `polyglot eval` evaluates without training: a base model as it is, or with a LoRA "
        "adapter from elsewhere ({name, base_model, adapter}).",
    )
    seeds: list[int] = Field(
        list(PAPER_SEEDS), min_length=1, description="Inference seeds; every evaluation runs once per seed."
    )
    lid: LidConfig = Field(default_factory=LidConfig, description="The language-identification model.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="The LLM judge for chat.")
    report: ReportConfig = Field(default_factory=ReportConfig, description="Report and figures.")

    @field_validator("base_models")
    @classmethod
    def _unique_models(cls, models: list[BaseModelConfig]) -> list[BaseModelConfig]:
        unique([m.name for m in models], "base model name")
        return models

    @field_validator("evaluate_models")
    @classmethod
    def _evaluated_on_a_base_model(cls, models: list[EvaluatedModel], info: ValidationInfo) -> list[EvaluatedModel]:
        bases = [m.name for m in info.data.get("base_models") or []]
        for model in models:
            if model.base_model not in bases:
                raise ValueError(f"{model.name}: base_model {model.base_model!r} is none of base_models {bases}")
        unique([m.name for m in models], "evaluated model name")
        return models

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if any(seed < 0 for seed in seeds):
            raise ValueError("seeds must be non-negative")
        return unique(seeds, "seed")

    @property
    def is_pipeline_check(self) -> bool:
        """True when any model is tiny and random: the report must say its numbers are not results."""
        return any(m.tiny_random is not None for m in self.base_models)

    def base_model(self, name: str) -> BaseModelConfig:
        for model in self.base_models:
            if model.name == name:
                return model
        raise KeyError(name)
