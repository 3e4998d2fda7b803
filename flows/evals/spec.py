"""An evaluation task as one declaration: a YAML data file (this schema) plus one hook module.

The YAML says what the rest of the study needs to know about a task: how it is run (`method`), who grades
it (`graded_by`), its metrics, variants, language coverage, option defaults and the planner's per-item
figures. The hook module does what cannot be data: read the benchmark, build items, score one output.
See README.md, "Extending: a new evaluation task", and `flows/evals/tasks/*.yaml`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from types import ModuleType
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    create_model,
    field_validator,
    model_validator,
)

from flows.evals.items import EvalItem
from services.common import languages as language_registry
from services.common.config.types import LanguageCode, Section, sampling_field, unique
from services.common.presets import SamplingParams, get_preset


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricSpec(_Data):
    """One metric, declared once; tasks refer to it by name."""

    name: str
    label: str = Field(description="Axis and table label, e.g. `Exact match`.")
    range: tuple[float, float] = Field(description="Closed range; a value outside is a bug upstream.")
    higher_is_better: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> MetricSpec:
        low, high = self.range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"metric {self.name!r}: range must be [low, high] with low < high")
        return self


class VariantSpec(_Data):
    name: str = ""
    label: str = ""


class PlannerFigures(_Data):
    """Per-item figures behind `polyglot plan`'s estimates (stated guesses; `Assumptions` can override)."""

    prompt_tokens: int = Field(0, ge=0, description="Mean prompt tokens per item.")
    output_tokens: int = Field(0, ge=0, description="Mean generated tokens per item (generate tasks).")
    items_available: int | dict[str, int] = Field(
        0, description="Items per language in the full set; per item set when `item_sets_option` is set."
    )
    item_sets_option: str | None = Field(None, description="Option naming the item sets to run (chat: prompt_sets).")
    requests_per_item: int = Field(1, ge=1, description="Scoring requests per item (loglikelihood: its choices).")
    continuation_tokens: int = Field(0, ge=0, description="Tokens of one scored continuation (loglikelihood).")
    human_translations: dict[str, list[str]] = Field(
        {}, description="Per item set, the languages it has without machine translation; others are translated."
    )


class TaskOptions(Section):
    """Options every task takes; a hook's `Options` adds its own, the YAML's `defaults` sets theirs."""

    languages: list[LanguageCode] = Field(min_length=1, description="ISO 639-1 codes to evaluate.")
    sample_size: int | None = Field(None, gt=0, description="Items per language, a seeded sample; null = every item.")

    @field_validator("languages")
    @classmethod
    def _unique(cls, codes: list[str]) -> list[str]:
        return unique(codes, "language")


class TaskFile(_Data):
    """The YAML data file of one task."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    label: str
    description: str = ""
    order: int = Field(100, description="Position in tables, figures and the report (built-ins: 10-40).")
    method: Literal["generate", "loglikelihood"]
    graded_by: Literal["reference", "judge", "lid"] = "reference"  # lid: the lid service's line check
    metrics: list[str | MetricSpec] = Field(min_length=1, description="Names, or new metrics declared here.")
    variants: list[VariantSpec] = Field(default_factory=lambda: [VariantSpec()], min_length=1)
    variant_option: str | None = Field(None, description="Option that selects the variants to run (xquad: modes).")
    languages: list[str] | None = Field(None, description="Languages the benchmark covers; null = any.")
    defaults: dict[str, Any] = Field(
        {}, description="Defaults of the common options (sample_size, sampling): a value or {default, description}."
    )
    planner: PlannerFigures = Field(default_factory=PlannerFigures)
    hook: str = Field(description="Hook module: a dotted module name, or a .py file beside the YAML.")


class TaskSpec(TaskFile):
    """A registered task: its declaration, its hook module and its options model."""

    _hook: ModuleType = PrivateAttr()
    _options_model: type[TaskOptions] = PrivateAttr()

    @classmethod
    def build(cls, data: TaskFile, hook: ModuleType) -> TaskSpec:
        spec = cls(**{**data.__dict__, "metrics": [m.name if isinstance(m, MetricSpec) else m for m in data.metrics]})
        spec._hook = hook
        spec._options_model = _options_model(spec, hook)
        needed = {"reference": "score", "judge": "judged_metrics", "lid": "lid_metrics"}[spec.graded_by]
        missing = [fn for fn in ("inputs", "build_items", needed) if not callable(getattr(hook, fn, None))]
        if missing:
            raise ValueError(f"task {spec.name!r}: hook {hook.__name__} lacks {', '.join(missing)}")
        for option in (spec.variant_option, spec.planner.item_sets_option):
            if option is not None and option not in spec._options_model.model_fields:
                raise ValueError(f"task {spec.name!r}: {option!r} is not one of its options")
        return spec

    @property
    def hook_module(self) -> ModuleType:
        return self._hook

    @property
    def options_model(self) -> type[TaskOptions]:
        return self._options_model

    def options(self, **values: Any) -> TaskOptions:
        return self._options_model.model_validate(values)

    def metric_names(self) -> tuple[str, ...]:
        """In the order tables and figures show them."""
        return tuple(self.metrics)

    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    def variant_label(self, name: str) -> str:
        return next((v.label for v in self.variants if v.name == name and v.label), name)

    def variants_for(self, options: TaskOptions) -> list[str]:
        """The variants a configured task runs."""
        return list(getattr(options, self.variant_option)) if self.variant_option else list(self.variant_names())

    def run_seeds(self, seeds: Sequence[int]) -> list[int]:
        """The seeds a task runs: log-likelihood scoring does not sample, so one seed stands for all."""
        return list(seeds[:1]) if self.method == "loglikelihood" else list(seeds)

    def items_per_set(self, options: TaskOptions, available: dict[str, int]) -> dict[str, int]:
        """Items per language per item set ("" for a task with one set): the sample, or every item."""
        sets = getattr(options, self.planner.item_sets_option) if self.planner.item_sets_option else [""]
        sets = [sets] if isinstance(sets, str) else sets  # an option naming one set (xnli: split)
        out = {}
        for name in sets:
            have = available.get(self.item_set_key(name), 0)
            out[name] = min(options.sample_size, have) if options.sample_size else have
        return out

    def item_set_key(self, item_set: str) -> str:
        return f"{self.name}:{item_set}" if item_set else self.name

    # -- the hook ------------------------------------------------------------------------------------

    def inputs(self, options: TaskOptions, language: str, translator_model: str = "") -> dict[str, str]:
        """What determines a language's items besides the options (file hashes, template data, the
        translation model when one is needed). Artifact keys hash it; it must be cheap."""
        return self._hook.inputs(options, language, translator_model)

    def build_items(
        self, options: TaskOptions, language: str, *, seed: int, translator: Any = None, store: Any = None
    ) -> list[EvalItem]:
        """The items of one language, sampled with `seed` (the same items in every language). A hook whose
        `build_items` takes `store` gets the artifact store, to keep a downloaded benchmark there (xcsqa)."""
        extra = {"store": store} if "store" in inspect.signature(self._hook.build_items).parameters else {}
        return self._hook.build_items(options, language, seed=seed, translator=translator, **extra)

    def score(self, item: EvalItem, output: Any) -> dict[str, float]:
        """Metrics of one output (generate: the text; loglikelihood: one log-probability per choice)."""
        if self.graded_by != "reference":
            raise NotImplementedError(f"{self.name} is graded by the {self.graded_by}, not scored here")
        return self._hook.score(item, output)


def _option(spec: TaskSpec, name: str, description: str) -> tuple[Any, str]:
    value = spec.defaults.get(name)
    if isinstance(value, dict) and "default" in value:
        return value["default"], value.get("description", description)
    return value, description


def _options_model(spec: TaskSpec, hook: ModuleType) -> type[TaskOptions]:
    """The hook's `Options` (or TaskOptions) with the defaults the YAML declares."""
    base: type[TaskOptions] = getattr(hook, "Options", TaskOptions)
    unknown = set(spec.defaults) - {"sample_size", "sampling"}
    if unknown:
        raise ValueError(f"task {spec.name!r}: defaults are for sample_size and sampling only, not {unknown}")
    study = language_registry.codes(language_registry.STUDY_LANGUAGES)
    default_languages = [code for code in study if spec.languages is None or code in spec.languages]
    sample_size, sample_text = _option(spec, "sample_size", TaskOptions.model_fields["sample_size"].description)

    def covered(code: str) -> str:
        if spec.languages is not None and code not in spec.languages:
            raise ValueError(f"{spec.name} has no {code!r} data (it covers {', '.join(spec.languages)})")
        return code

    fields: dict[str, Any] = {
        "languages": (
            list[Annotated[LanguageCode, AfterValidator(covered)]],
            Field(
                default_factory=lambda: list(default_languages),
                min_length=1,
                description=TaskOptions.model_fields["languages"].description,
            ),
        ),
        "sample_size": (int | None, Field(sample_size, gt=0, description=sample_text)),
    }
    if spec.method == "generate":
        text = "A preset name (chat, constrained, lcb) or {preset: ..., <field>: override}."
        preset, text = _option(spec, "sampling", text)
        preset = preset or "constrained"
        fields["sampling"] = (
            Annotated[SamplingParams, sampling_field(preset)],
            Field(default_factory=lambda: get_preset(preset), description=text),
        )
    name = "".join(part.capitalize() for part in spec.name.replace("_", "-").split("-")) + "Options"
    model = create_model(name, __base__=base, __module__=hook.__name__, __doc__=spec.description or None, **fields)
    setattr(hook, name, model)  # importable by name, so configs holding these options pickle
    return model
