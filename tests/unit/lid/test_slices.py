"""`slices`: how the servicer cuts a batch into runs of text between yields to the event loop."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.lid.servicer import slices


def test_slices_close_once_the_budget_is_reached():
    assert list(slices([10, 10, 10, 10, 10], budget=20)) == [(0, 2), (2, 4), (4, 5)]
    assert list(slices([50, 1, 1], budget=20)) == [(0, 1), (1, 3)]  # an item over budget is a slice alone
    assert list(slices([], budget=20)) == []


@given(st.lists(st.integers(0, 100), max_size=60), st.integers(1, 150))
def test_slices_cover_every_item_once_in_order(sizes, budget):
    ranges = list(slices(sizes, budget))
    assert [i for start, stop in ranges for i in range(start, stop)] == list(range(len(sizes)))
    assert all(stop > start for start, stop in ranges)
    # Every slice but the last holds at least the budget; dropping its last item puts it under.
    for start, stop in ranges[:-1]:
        assert sum(sizes[start:stop]) >= budget > sum(sizes[start : stop - 1])
