"""The `data` section: where conversations come from, the LID filter, and which tuning mixes to build."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from services.common import languages
from services.common.config.types import HubIdOrPath, LanguageCode, Section, unique
from services.common.presets import DATA_SEED

MixKind = Literal["mono", "multi", "full", "leave-one-out"]
_MIX_NAME = re.compile(r"^(?:(mono)|multi-(\d+)(-mt)?|(full)|leave-one-out:([A-Za-z-]+))$")
MIX_NAME_HELP = "mono, multi-<i> (2 <= i <= len(order)+1), multi-<i>-mt, full, leave-one-out:<lang>"


@dataclass(frozen=True)
class MixSpec:
    """One tuning mix, parsed from its name.

    - `mono`: N English examples;
    - `multi-<i>`: N rows, K from each of the first i-1 languages of `order`, the rest English;
    - `multi-<i>-mt`: the same, its non-English part machine-translated from English Mono examples (§5.1);
    - `full`: every row that passes the LID filter (the paper's "Guanaco" model);
    - `leave-one-out:<lang>`: `full` without one language.
    """

    name: str
    kind: MixKind
    size: int | None = None  # i of multi-i
    machine_translated: bool = False
    left_out: str | None = None

    def non_english(self, order: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        """The languages a multi-i mix adds to English, in the order they were added."""
        return tuple(order[: self.size - 1]) if self.kind == "multi" and self.size else ()


def parse_mix(name: str) -> MixSpec:
    """Parse a mix name; raises ValueError naming the accepted forms."""
    match = _MIX_NAME.match(name.strip())
    if not match:
        raise ValueError(f"unknown mix {name!r}; expected one of: {MIX_NAME_HELP}")
    mono, size, mt, full, left_out = match.groups()
    if mono:
        return MixSpec(name, "mono")
    if full:
        return MixSpec(name, "full")
    if left_out:
        lang = languages.resolve(left_out)
        if lang is None or lang.code != left_out.lower():
            raise ValueError(f"leave-one-out names an unknown language code {left_out!r}")
        return MixSpec(f"leave-one-out:{lang.code}", "leave-one-out", left_out=lang.code)
    return MixSpec(name, "multi", size=int(size), machine_translated=bool(mt))


MixName = Annotated[str, AfterValidator(lambda name: parse_mix(name).name)]


class ConversationSource(Section):
    source: HubIdOrPath = Field(
        "timdettmers/openassistant-guanaco",
        description="Hub dataset id, or a local jsonl path (starting with '.', '/', '~' or '$') in Guanaco "
        "format (`input`/`output`/`lang` or `text`).",
    )
    split: str = Field("train", description="Split to read when `source` is a hub dataset.")


class MixRecipe(Section):
    """The paper's mix recipe (§3.1): every mix has N rows; Multi-i swaps K English rows per language."""

    n: int = Field(3200, gt=0, description="Rows in every Mono / Multi-i mix (N).")
    k: int = Field(200, gt=0, description="Rows per non-English language in a Multi-i mix (K).")
    order: list[LanguageCode] = Field(
        list(languages.PAPER_MIX_ORDER),
        min_length=1,
        description="Order in which Multi-i adds languages: Multi-2 adds the first, Multi-3 the second, ...",
    )
    seed: int = Field(DATA_SEED, ge=0, description="Sampling seed for every mix.")
    mono_ids: str | None = Field(
        None,
        description="The rows of Mono (the first of the English order, in this order): null = a seeded sample; "
        "`paper` = the paper's data/guanaco/ml1_ids (from protocol.sources); or a file of `\"id\":N` lines. "
        "An id is a source row's `id`, or its row number when the source has none.",
    )
    build: list[MixName] = Field(
        ["mono", "multi-2", "multi-3", "multi-4", "multi-5", "multi-6", "full"],
        min_length=1,
        description=f"Mixes to build and train: {MIX_NAME_HELP}.",
    )

    @field_validator("order")
    @classmethod
    def _order(cls, order: list[str]) -> list[str]:
        if "en" in order:
            raise ValueError("English is the base of every mix and cannot be added to it")
        return unique(order, "language")

    @field_validator("build")
    @classmethod
    def _build(cls, names: list[str]) -> list[str]:
        return unique(names, "mix")

    @model_validator(mode="after")
    def _fits(self) -> MixRecipe:
        for spec in self.specs():
            if spec.kind != "multi":
                continue
            if not 2 <= spec.size <= len(self.order) + 1:
                raise ValueError(f"{spec.name}: i must be in 2..{len(self.order) + 1} for order {self.order}")
            if (spec.size - 1) * self.k > self.n:
                raise ValueError(f"{spec.name} needs {(spec.size - 1) * self.k} non-English rows but N = {self.n}")
        return self

    def specs(self) -> list[MixSpec]:
        return [parse_mix(name) for name in self.build]


class DataConfig(Section):
    conversations: ConversationSource = Field(
        default_factory=ConversationSource, description="The instruction-tuning conversations."
    )
    lid_threshold: float = Field(
        0.8, ge=0.0, le=1.0, description="Keep a conversation only if LID confidence is at least this (paper: 0.8)."
    )
    lid_filter_full: bool = Field(
        True,
        description="Apply the LID filter (`lid_threshold`) to the `full` and leave-one-out mixes as well; the paper "
        "trains its Guanaco model on every row, unfiltered (false).",
    )
    mixes: MixRecipe = Field(default_factory=MixRecipe, description="Which tuning mixes to build, and how.")
