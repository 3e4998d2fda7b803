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
