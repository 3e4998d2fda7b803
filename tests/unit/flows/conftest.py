"""Synthetic per-item results with known structure, shared by the aggregation, figure and report tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from flows.config import StudyConfig, load_config
from flows.results import ItemResult

REPO = Path(__file__).resolve().parents[3]


def make_records(
    *,
    mixes: tuple[str, ...] = ("mono", "multi-2"),
    languages: tuple[str, ...] = ("en", "es"),
    seeds: tuple[int, ...] = (0, 42, 723),
    n_items: int = 30,
    task: str = "xnli",
    variant: str = "",
    metric: str = "accuracy",
    value: Callable[[str, str, int, int, np.random.Generator], float] | None = None,
    rng_seed: int = 0,
    study: str = "test",
    base_model: str = "m",
) -> list[ItemResult]:
    """Records for every mix × language × item × seed; `value(mix, lang, item, seed, rng)` gives the metric."""
    rng = np.random.default_rng(rng_seed)
    value = value or (lambda mix, lang, item, seed, rng: float(rng.random() < 0.6))
    return [
        ItemResult(
            study,
            base_model,
            mix,
            task,
            variant,
            lang,
            seed,
            f"{lang}-{item}",
            {metric: value(mix, lang, item, seed, rng)},
        )
        for mix in mixes
        for lang in languages
        for item in range(n_items)
        for seed in seeds
    ]


@pytest.fixture(scope="session")
def smoke_cfg() -> StudyConfig:
    return load_config(REPO / "configs" / "smoke.yaml")


@pytest.fixture(scope="session")
def paper_cfg() -> StudyConfig:
    return load_config(REPO / "configs" / "paper-llama2-7b.yaml")
