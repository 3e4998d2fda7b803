"""A batch that raises is retried in halves, so the error reaches only the row that causes it (issue 19,
row 6: one client's row must not fail the others batched with it)."""

from __future__ import annotations

import pytest

from services.generator.backends.batching import BatchWorker, Job


def test_a_row_that_raises_fails_alone_and_its_batch_mates_are_served():
    batches = []

    def run(kind, adapter, jobs):
        batches.append([j.row for j in jobs])
        if "poison" in (j.row for j in jobs):
            raise FloatingPointError("NaN in this batch")
        for j in jobs:
            j.future.set_result(j.row.upper())

    worker = BatchWorker(run, window_s=0.2)
    try:
        rows = ["a", "b", "poison", "c"]
        futures = worker.submit([Job("generate", row, "", 4, 4) for row in rows])
        with pytest.raises(FloatingPointError):
            futures[2].result(10)
        assert [f.result(10) for i, f in enumerate(futures) if i != 2] == ["A", "B", "C"]
        assert batches[0] == rows and ["poison"] in batches  # one batch first, the culprit alone at the end
    finally:
        worker.close()
