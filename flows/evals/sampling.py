"""Seeded item samples that are the same in every language of a parallel dataset."""

from __future__ import annotations

import random
from collections.abc import Sequence


def sample(ids: Sequence[str], size: int | None, seed: int, tag: str) -> list[str]:
    """`size` of `ids` drawn with a generator seeded by `"{seed}:{tag}"`, returned in their original order.

    The draw depends only on the set of ids (sorted first), the size, the seed and the tag, so parallel
    datasets with equal ids give equal samples whatever their file order, and tasks draw independently.
    """
    if size is None or size >= len(ids):
        return list(ids)
    chosen = set(random.Random(f"{seed}:{tag}").sample(sorted(ids), size))
    return [i for i in ids if i in chosen]


def pandas_sample(ids: Sequence[str], size: int | None, random_state: int) -> list[str]:
    """The rows `pandas.DataFrame.sample(n=size, random_state=random_state)` picks from a frame of `ids`, in its
    order (the paper's draw, e.g. the 300 judged AlpacaEval prompts: `sample(300, random_state=42)`).

    pandas turns an int `random_state` into `numpy.random.RandomState(random_state)` and takes the positions
    `choice(len, size, replace=False)` (pandas.core.sample.sample); this makes the same call, so the draw
    needs numpy but not pandas. `size` None or at least `len(ids)` keeps every id, in order.
    """
    if size is None or size >= len(ids):
        return list(ids)
    import numpy as np

    positions = np.random.RandomState(random_state).choice(len(ids), size=size, replace=False)
    return [ids[int(p)] for p in positions]


def draw(ids: Sequence[str], size: int | None, seed: int, tag: str, method: str = "polyglot") -> list[str]:
    """`size` of `ids` by `method`: `polyglot` (`sample`, parallel across languages and tasks) or `pandas`
    (`pandas_sample` with `seed` as its random_state, the paper's draw)."""
    return pandas_sample(ids, size, seed) if method == "pandas" else sample(ids, size, seed, tag)
