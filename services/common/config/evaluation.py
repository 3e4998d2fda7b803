"""The `evaluation` section: the paper's four tasks, each with its languages, sample and decoding.

A task left out of the file is not run; a task named with no settings (`chat:`) runs with its
defaults. Default languages are the study languages each task's data covers, in the paper's order.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from services.common import languages
from services.common.config.types import LanguageCode, LocalPath, Section, sampling_field, unique
from services.common.presets import DATA_SEED, SamplingParams, get_preset


def _study_subset(available: str) -> list[str]:
    have = set(available.split())
    return [code for code in languages.codes(languages.STUDY_LANGUAGES) if code in have]


# Languages each public benchmark covers (XQuAD 12 of 13, X-CSQA 16, XNLI 15).
XQUAD_LANGUAGES = "ar de el en es hi ro ru th tr vi zh"
XCSQA_LANGUAGES = "en zh de es fr it ja nl pl pt ru ar vi hi sw ur"
XNLI_LANGUAGES = "ar bg de el en es fr hi ru sw th tr ur vi zh"


class _Task(Section):
    languages: list[LanguageCode] = Field(min_length=1, description="ISO 639-1 codes to evaluate.")
    sample_size: int | None = Field(None, gt=0, description="Items per language, a seeded sample; null = every item.")

    @field_validator("languages")
    @classmethod
    def _unique(cls, codes: list[str]) -> list[str]:
        return unique(codes, "language")


class ChatTask(_Task):
    """Open-ended chat, graded by the judge for helpfulness with the paper's language gate."""

    languages: list[LanguageCode] = Field(
        default_factory=lambda: list(languages.codes(languages.STUDY_LANGUAGES)),
        min_length=1,
        description="ISO 639-1 codes to evaluate.",
    )
    sample_size: int | None = Field(300, gt=0, description="Prompts per language (paper: 300 of AlpacaEval's 805).")
    prompt_sets: list[Literal["alpaca_eval", "oasst_prompts"]] = Field(
        ["alpaca_eval"],
        min_length=1,
        description="alpaca_eval: AlpacaEval instructions and their translations; oasst_prompts: the "
        "human-translated OpenAssistant prompts. Missing languages are machine-translated via the judge.",
    )
    sampling: Annotated[SamplingParams, sampling_field("chat")] = Field(
        default_factory=lambda: get_preset("chat"),
        description="A preset name (chat, constrained) or {preset: ..., <field>: override}.",
    )
    alpaca_eval: LocalPath | None = Field(
        None, description="AlpacaEval JSON (`instruction` field); null = the hub copy."
    )
    alpaca_eval_translations: LocalPath | None = Field(
        None, description="Directory of OMGEval_<Language>.txt translations (zh ru fr es)."
    )
    oasst_prompts: LocalPath | None = Field(None, description="Directory of test_<lang>.jsonl prompt files.")


class XquadTask(_Task):
    """Extractive QA answered with a forced prefix, scored by exact match and token F1."""

    languages: list[LanguageCode] = Field(
        default_factory=lambda: _study_subset(XQUAD_LANGUAGES), min_length=1, description="ISO 639-1 codes."
    )
    modes: list[Literal["en:xx", "xx:xx"]] = Field(
        ["en:xx", "xx:xx"],
        min_length=1,
        description="en:xx = English instruction, target-language passage and question; xx:xx = all in the "
        "target language.",
    )
    sampling: Annotated[SamplingParams, sampling_field("constrained")] = Field(
        default_factory=lambda: get_preset("constrained"), description="Preset name or {preset, overrides}."
    )
    data_dir: LocalPath | None = Field(None, description="Directory of xquad.<lang>.json; null = the hub copy.")


class XcsqaTask(_Task):
    """Multiple-choice commonsense QA (options A-E), answered with one letter."""

    languages: list[LanguageCode] = Field(
        default_factory=lambda: _study_subset(XCSQA_LANGUAGES), min_length=1, description="ISO 639-1 codes."
    )
    sampling: Annotated[SamplingParams, sampling_field("constrained")] = Field(
        default_factory=lambda: get_preset("constrained"), description="Preset name or {preset, overrides}."
    )
    data_dir: LocalPath | None = Field(
        None, description="Directory of per-language jsonl files in the published X-CSQA format."
    )


class XnliTask(_Task):
    """Natural language inference scored by log-likelihood of each choice (no sampling)."""

    languages: list[LanguageCode] = Field(
        default_factory=lambda: _study_subset(XNLI_LANGUAGES), min_length=1, description="ISO 639-1 codes."
    )
    data_dir: LocalPath | None = Field(
        None, description="Directory of xnli_dev-<lang>.tsv (premise, hypothesis, label); null = the hub copy."
    )


class Tasks(Section):
    chat: ChatTask | None = Field(None, description="Chat helpfulness (judge); omitted = not run.")
    xquad: XquadTask | None = Field(None, description="XQuAD; omitted = not run.")
    xcsqa: XcsqaTask | None = Field(None, description="X-CSQA; omitted = not run.")
    xnli: XnliTask | None = Field(None, description="XNLI; omitted = not run.")

    @field_validator("chat", "xquad", "xcsqa", "xnli", mode="before")
    @classmethod
    def _bare_name_runs_defaults(cls, value: object) -> object:
        # `xnli:` with nothing under it parses as null; the user meant "run it", not "skip it".
        return {} if value is None else value

    @model_validator(mode="after")
    def _any(self) -> Tasks:
        if not self.enabled():
            raise ValueError("no evaluation task is configured: set at least one of chat, xquad, xcsqa, xnli")
        return self

    def enabled(self) -> dict[str, _Task]:
        """The configured tasks by name, in a fixed order."""
        names = ("chat", "xquad", "xcsqa", "xnli")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


class EvaluationConfig(Section):
    tasks: Tasks = Field(description="Which tasks to run; at least one.")
    sample_seed: int = Field(DATA_SEED, ge=0, description="Seed that draws each task's item sample.")
