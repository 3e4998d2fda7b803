"""The paper's mixes (§3.1): exact counts, nesting, the LID threshold, determinism, and clear shortfalls."""

from __future__ import annotations

import zlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.config import MixRecipe
from flows.data.build import jsonl_bytes
from flows.data.labelling import LabelledConversation
from flows.data.mixes import InsufficientData, MixPlanner, mix_rows

ORDER = ["es", "ru", "de", "zh", "fr"]
THRESHOLD = 0.8


def synthetic(sizes: dict[str, int], noise: int = 0) -> list[LabelledConversation]:
    """`sizes[lang]` confident rows per language, plus `noise` rows per language below the threshold,
    interleaved as a real source would be."""
    rows = []
    for lang, size in sizes.items():
        rows += [
            LabelledConversation(
                f"{lang}-{i}", f"### Human: {lang} {i}### Assistant: ok", lang, 0.8 + 0.2 * (i % 5) / 5
            )
            for i in range(size)
        ]
        rows += [LabelledConversation(f"{lang}-low-{i}", f"### Human: {lang} low {i}", lang, 0.5) for i in range(noise)]
    rows += [LabelledConversation(f"unk-{i}", "### Human: ???", "", 0.0) for i in range(noise)]
    return sorted(rows, key=lambda r: (zlib.crc32(r.id.encode()) % 7, r.id))  # a fixed interleaving


def build(planner: MixPlanner, name: str, seed: int):
    return mix_rows(planner.plan(name), seed)


def multis(recipe: MixRecipe) -> list[str]:
    return [f"multi-{i}" for i in range(2, len(recipe.order) + 2)]


@st.composite
def recipes_and_sources(draw):
    order = draw(st.permutations(ORDER))[: draw(st.integers(1, 5))]
    k = draw(st.integers(1, 8))
    n = draw(st.integers(len(order) * k, len(order) * k + 40))
    seed = draw(st.integers(0, 2**32 - 1))
    sizes = {"en": draw(st.integers(n, n + 30))}
    sizes.update({lang: draw(st.integers(k, k + 15)) for lang in order})
    sizes["th"] = draw(st.integers(0, 5))  # a language no mix adds
    recipe = MixRecipe(
        n=n, k=k, order=order, seed=seed, build=["mono", *(f"multi-{i}" for i in range(2, len(order) + 2))]
    )
    return recipe, synthetic(sizes, noise=draw(st.integers(0, 4)))


@settings(max_examples=60, deadline=None)
@given(recipes_and_sources())
def test_every_multi_has_n_rows_k_per_added_language_and_is_nested(case):
    recipe, source = case
    planner = MixPlanner(source, recipe, THRESHOLD)
    n, k = recipe.n, recipe.k
    mono = build(planner, "mono", recipe.seed)
    assert len(mono) == n and {r.lang for r in mono} == {"en"}
    previous_english, previous_native = {r.id for r in mono}, set()
    for i, name in enumerate(multis(recipe), start=2):
        rows = build(planner, name, recipe.seed)
        counts = Counter(r.lang for r in rows)
        added = recipe.order[: i - 1]
        assert len(rows) == n
        assert counts == Counter({"en": n - (i - 1) * k, **{lang: k for lang in added}}) - Counter()
        assert all(r.lid_prob >= THRESHOLD for r in rows)  # the LID threshold holds
        assert len({r.id for r in rows}) == n  # no row twice
        english = {r.id for r in rows if r.lang == "en"}
        native = {r.id for r in rows if r.lang != "en"}
        # Multi-i keeps Multi-(i-1)'s non-English rows and drops exactly K more English rows.
        assert previous_native <= native and english <= previous_english
        assert len(previous_english - english) == k
        previous_english, previous_native = english, native


@settings(max_examples=30, deadline=None)
@given(recipes_and_sources())
def test_same_seed_gives_byte_identical_mixes(case):
    recipe, source = case
    for name in ["mono", *multis(recipe)]:
        a = jsonl_bytes(r.to_json() for r in build(MixPlanner(source, recipe, THRESHOLD), name, recipe.seed))
        b = jsonl_bytes(r.to_json() for r in build(MixPlanner(list(source), recipe, THRESHOLD), name, recipe.seed))
        assert a == b


def test_different_seeds_draw_different_rows():
    source = synthetic({"en": 400, "es": 100})
    a = MixPlanner(source, MixRecipe(n=100, k=20, order=["es"], seed=42, build=["multi-2"]), THRESHOLD)
    b = MixPlanner(source, MixRecipe(n=100, k=20, order=["es"], seed=43, build=["multi-2"]), THRESHOLD)
    assert {r.id for r in build(a, "multi-2", 42)} != {r.id for r in build(b, "multi-2", 43)}


def test_paper_scale_recipe_gives_exact_counts():
    """N = 3,200, K = 200, seed 42, order es ru de zh fr, on a source with enough rows per language."""
    recipe = MixRecipe()  # the paper's defaults
    assert (recipe.n, recipe.k, recipe.order, recipe.seed) == (3200, 200, ["es", "ru", "de", "zh", "fr"], 42)
    source = synthetic({"en": 3627, "es": 3850, "ru": 754, "de": 351, "zh": 330, "fr": 259, "ca": 250}, noise=20)
    planner = MixPlanner(source, recipe, THRESHOLD)
    expected = {
        "mono": {"en": 3200},
        "multi-2": {"en": 3000, "es": 200},
        "multi-3": {"en": 2800, "es": 200, "ru": 200},
        "multi-4": {"en": 2600, "es": 200, "ru": 200, "de": 200},
        "multi-5": {"en": 2400, "es": 200, "ru": 200, "de": 200, "zh": 200},
        "multi-6": {"en": 2200, "es": 200, "ru": 200, "de": 200, "zh": 200, "fr": 200},
    }
    for name, counts in expected.items():
        assert Counter(r.lang for r in build(planner, name, 42)) == Counter(counts), name
    full = build(planner, "full", 42)
    assert len(full) == 3627 + 3850 + 754 + 351 + 330 + 259 + 250  # every confident row, no noise
    loo = Counter(r.lang for r in build(planner, "leave-one-out:ru", 42))
    assert "ru" not in loo and sum(loo.values()) == len(full) - 754


def test_machine_translated_mix_translates_the_english_rows_multi_i_dropped():
    recipe = MixRecipe(n=50, k=10, order=["es", "ru", "de"], seed=42, build=["multi-3-mt"])
    source = synthetic({"en": 80, "es": 30, "ru": 30, "de": 30})
    planner = MixPlanner(source, recipe, THRESHOLD)
    mono = {r.id for r in build(planner, "mono", 42)}
    multi3 = build(planner, "multi-3", 42)
    plan = planner.plan("multi-3-mt")
    # Same English rows as Multi-3; the translated rows come from Mono, exactly the English Multi-3 dropped.
    assert {r.id for r in plan.english} == {r.id for r in multi3 if r.lang == "en"}
    translated_from = {r.id for rows in plan.to_translate.values() for r in rows}
    assert translated_from == mono - {r.id for r in plan.english}
    assert {lang: len(rows) for lang, rows in plan.to_translate.items()} == {"es": 10, "ru": 10}
    # Nested like the native mixes: Multi-2-MT's Spanish block is Multi-3-MT's.
    assert planner.plan("multi-2-mt").to_translate["es"] == plan.to_translate["es"]
    rows = mix_rows(plan, 42, {lang: [f"[{lang}] {r.text}" for r in rs] for lang, rs in plan.to_translate.items()})
    assert Counter(r.lang for r in rows) == Counter({"en": 30, "es": 10, "ru": 10})
    mt = [r for r in rows if r.origin == "mt"]
    assert all(
        r.lid_prob is None and r.source_id in translated_from and r.id == f"{r.source_id}@mt-{r.lang}" for r in mt
    )
    with pytest.raises(ValueError, match="need 10 translations into es"):
        mix_rows(plan, 42, {})


def test_shortfall_names_every_language_and_count():
    recipe = MixRecipe(n=160, k=20, order=["es", "ru", "de", "zh", "fr"], seed=42, build=["multi-6"])
    source = synthetic({"en": 200, "es": 272, "ru": 80, "de": 19, "zh": 20, "fr": 12}, noise=10)
    planner = MixPlanner(source, recipe, THRESHOLD)
    with pytest.raises(InsufficientData) as caught:
        planner.check(recipe.specs())
    message = str(caught.value)
    assert "multi-6 needs 20 'de' conversations with LID confidence >= 0.8 but the source has 19" in message
    assert "'fr'" in message and "has 12" in message and "'zh'" not in message
    assert caught.value.field == "data.mixes.k"
    assert [(s.language, s.available) for s in caught.value.shortfalls] == [("de", 19), ("fr", 12)]
    # Below-threshold rows do not count: 10 noisy de rows would have made 29.
    with pytest.raises(InsufficientData, match="'en' conversations") as caught:
        MixPlanner(synthetic({"en": 100}), MixRecipe(n=160, k=20, build=["mono"]), THRESHOLD).plan("mono")
    assert caught.value.field == "data.mixes.n"
