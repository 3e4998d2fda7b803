"""The paper's instruction-tuning mixes (§3.1), as pure functions of labelled rows and the recipe.

- Mono: N English conversations.
- Multi-i (i = 2..6): N rows; K conversations from each of the first i-1 languages of `order`
  (es, ru, de, zh, fr) replace K English ones each. Nested: Multi-(i+1) keeps all of Multi-i's
  non-English rows and drops K more of its English rows.
- Multi-i-MT (§5.1): Multi-i's English rows, and in place of each language's native rows, the English
  Mono rows that Multi-i dropped for that language, machine-translated into it.
- full: every row that passes the LID filter; leave-one-out:<lang>: full without that language.

Only rows whose top LID language has confidence ≥ the threshold (paper: 0.8) take part.

Mono's rows can instead be given (`data.mixes.mono_ids`: the paper's `data/guanaco/ml1_ids`, or a file
of the same shape): they head the English order, in the order given, and the seeded order of the other
English rows follows; Multi-i's English part is then a prefix of the paper's Mono as well.

Sampling is one seeded shuffle per language pool (Python's `random.Random` seeded with a string, which
is stable across processes and platforms): Mono is a prefix of the English order, Multi-i's English part
a shorter prefix of the same order, and each language's K rows a prefix of its own order. The nesting
follows from the prefixes; the same seed gives the same rows in the same order, byte for byte.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flows.config import MixRecipe, MixSpec, parse_mix
from flows.data.labelling import LabelledConversation, confident
from services.common.errors import FailedPrecondition

ENGLISH = "en"


@dataclass(frozen=True)
class Shortfall:
    mix: str
    language: str
    needed: int
    available: int


class InsufficientData(FailedPrecondition):
    """The source has too few confident conversations in some language for the requested mixes."""

    def __init__(self, shortfalls: Sequence[Shortfall], threshold: float):
        self.shortfalls = list(shortfalls)
        lines = [
            f"{s.mix} needs {s.needed} '{s.language}' conversations with LID confidence >= {threshold:g} "
            f"but the source has {s.available}"
            for s in self.shortfalls
        ]
        first = self.shortfalls[0]
        field_name = "data.mixes.n" if first.language == ENGLISH else "data.mixes.k"
        super().__init__(
            "; ".join(lines) + " (lower data.mixes.n / data.mixes.k or use a larger source)", field=field_name
        )


@dataclass(frozen=True)
class MixPlan:
    """Which labelled rows make up one mix; `to_translate` rows become MT rows of their target language."""

    spec: MixSpec
    english: list[LabelledConversation]
    native: dict[str, list[LabelledConversation]] = field(default_factory=dict)
    to_translate: dict[str, list[LabelledConversation]] = field(default_factory=dict)
    others: list[LabelledConversation] = field(default_factory=list)  # full / leave-one-out rows

    @property
    def size(self) -> int:
        return (
            len(self.english)
            + sum(map(len, self.native.values()))
            + sum(map(len, self.to_translate.values()))
            + len(self.others)
        )


def seeded_order(rows: Sequence[LabelledConversation], seed: int, tag: str) -> list[LabelledConversation]:
    """`rows` shuffled by a generator seeded with `"{seed}:{tag}"` (independent streams per pool)."""
    shuffled = list(rows)
    random.Random(f"{seed}:{tag}").shuffle(shuffled)
    return shuffled


def pools(rows: Sequence[LabelledConversation]) -> dict[str, list[LabelledConversation]]:
    """Rows grouped by language, each group in source order."""
    grouped: dict[str, list[LabelledConversation]] = {}
    for row in rows:
        grouped.setdefault(row.lang, []).append(row)
    return grouped


class MixPlanner:
    """Plans every mix of one recipe from one labelled source; shares the seeded orders between mixes."""

    def __init__(
        self,
        labelled: Sequence[LabelledConversation],
        recipe: MixRecipe,
        threshold: float,
        filter_full: bool = True,
        mono_ids: Sequence[int] | None = None,
    ):
        self.recipe = recipe
        self.labelled = list(labelled)
        self.mono_ids = list(mono_ids) if mono_ids else None
        self.threshold = threshold
        self.rows = confident(labelled, threshold)
        # `full` and leave-one-out take every row when the LID filter is off for them (the paper's Guanaco model).
        self.full_rows = self.rows if filter_full else list(labelled)
        self.pools = pools(self.rows)
        self._orders: dict[str, list[LabelledConversation]] = {}

    def order(self, lang: str) -> list[LabelledConversation]:
        if lang not in self._orders:
            seeded = seeded_order(self.pools.get(lang, []), self.recipe.seed, lang)
            if lang == ENGLISH and self.mono_ids:
                given = self._given_rows(self.mono_ids)
                taken = {row.id for row in given}
                seeded = given + [row for row in seeded if row.id not in taken]
            self._orders[lang] = seeded
        return self._orders[lang]

    def _given_rows(self, ids: Sequence[int]) -> list[LabelledConversation]:
        """The rows the given ids name, in their order, from every labelled row: the list is the paper's
        choice, made with its own LID model, so this run's labels do not second-guess it."""
        by_number = {int(row.id): row for row in self.labelled if row.id.isdigit()}
        missing = [n for n in ids if n not in by_number]
        if missing:
            raise FailedPrecondition(
                f"{len(missing)} of the {len(ids)} Mono ids name no row of the source (first: {missing[0]}); "
                "the ids are row numbers of the paper's Guanaco train split",
                field="data.mixes.mono_ids",
            )
        return [by_number[n] for n in ids]


    def shortfalls(self, spec: MixSpec) -> list[Shortfall]:
        n, k = self.recipe.n, self.recipe.k
        needs: dict[str, int] = {}
        if spec.kind == "mono":
            needs[ENGLISH] = n
        elif spec.kind == "multi":
            # MT variants translate English Mono rows, so they need all N English rows and no native ones.
            needs[ENGLISH] = n if spec.machine_translated else n - (spec.size - 1) * k
            if not spec.machine_translated:
                needs.update({lang: k for lang in spec.non_english(self.recipe.order)})
        return [
            Shortfall(spec.name, lang, need, self._available(lang))
            for lang, need in needs.items()
            if self._available(lang) < need
        ]

    def _available(self, lang: str) -> int:
        return len(self.order(lang)) if lang == ENGLISH and self.mono_ids else len(self.pools.get(lang, []))

    def check(self, specs: Sequence[MixSpec]) -> None:
        """Raise InsufficientData naming every language and count that falls short, before any work."""
        shortfalls = [s for spec in specs for s in self.shortfalls(spec)]
        if shortfalls:
            raise InsufficientData(shortfalls, self.threshold)

    def plan(self, spec: MixSpec | str) -> MixPlan:
        spec = parse_mix(spec) if isinstance(spec, str) else spec
        self.check([spec])
        n, k = self.recipe.n, self.recipe.k
        if spec.kind == "mono":
            return MixPlan(spec, english=self.order(ENGLISH)[:n])
        if spec.kind == "multi":
            langs = spec.non_english(self.recipe.order)
            english = self.order(ENGLISH)[: n - len(langs) * k]
            if spec.machine_translated:
                mono = self.order(ENGLISH)[:n]
                # The j-th added language takes the j-th block of K rows from the end of Mono: exactly the
                # rows Multi-(j+1) dropped when it added that language.
                blocks = {lang: mono[n - (j + 1) * k : n - j * k] for j, lang in enumerate(langs)}
                return MixPlan(spec, english=english, to_translate=blocks)
            return MixPlan(spec, english=english, native={lang: self.order(lang)[:k] for lang in langs})
        if spec.kind == "full":
            return MixPlan(spec, english=[], others=list(self.full_rows))
        return MixPlan(spec, english=[], others=[row for row in self.full_rows if row.lang != spec.left_out])


@dataclass(frozen=True)
class MixRow:
    """One row of a built mix, as stored: `text` (Guanaco format, what the trainer reads) plus provenance."""

    id: str
    lang: str
    text: str
    lid_prob: float | None  # the LID confidence of a native row; None for machine-translated rows
    origin: str = "native"  # "native" or "mt"
    source_id: str = ""  # for MT rows: the English row it was translated from

    def to_json(self) -> dict[str, object]:
        record: dict[str, object] = {
            "id": self.id,
            "lang": self.lang,
            "text": self.text,
            "lid_prob": self.lid_prob,
            "origin": self.origin,
        }
        if self.source_id:
            record["source_id"] = self.source_id
        return record


def _native(row: LabelledConversation) -> MixRow:
    return MixRow(row.id, row.lang, row.text, row.prob)


def mix_rows(plan: MixPlan, seed: int, translations: dict[str, Sequence[str]] | None = None) -> list[MixRow]:
    """The rows of a planned mix in a seeded order (so no language sits in one block of the file).

    `translations[lang]` holds the machine translations of `plan.to_translate[lang]`, in that order.
    """
    rows = [_native(row) for row in [*plan.english, *plan.others]]
    for natives in plan.native.values():
        rows.extend(_native(row) for row in natives)
    for lang, sources in plan.to_translate.items():
        texts = (translations or {}).get(lang)
        if texts is None or len(texts) != len(sources):
            raise ValueError(f"{plan.spec.name}: need {len(sources)} translations into {lang}, got {len(texts or [])}")
        rows.extend(
            MixRow(f"{src.id}@mt-{lang}", lang, text, None, "mt", src.id)
            for src, text in zip(sources, texts, strict=True)
        )
    random.Random(f"{seed}:mix:{plan.spec.name}").shuffle(rows)
    return rows


def read_mono_ids(setting: str | None) -> tuple[int, ...] | None:
    """The Mono ids `data.mixes.mono_ids` names: None, the paper's (`paper`), or a file's."""
    if not setting:
        return None
    from flows.protocol.paper_texts import load_paper_texts, parse_ids

    if setting == "paper":
        return load_paper_texts().mono_ids
    path = Path(setting)
    if not path.is_file():
        raise FailedPrecondition(f"Mono id file {path} does not exist", field="data.mixes.mono_ids")
    return parse_ids(path.read_text(encoding="utf-8"), str(path))


def mono_ids_identity(setting: str) -> str:
    """What the mixes' artifact keys record of `data.mixes.mono_ids`: the paper commit, or the file's hash."""
    if setting == "paper":
        from flows.protocol.sources import load_pins

        return f"paper@{load_pins().commit}"
    path = Path(setting)
    return f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}" if path.is_file() else setting
