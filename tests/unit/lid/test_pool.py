"""`WorkerPool`: shares of a batch computed in forked children equal the serving process's own results."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import InvalidArgument
from services.lid.core import LanguageIdentifier
from services.lid.pool import WorkerPool, shares
from tests.fixtures.processes import alive, wait_until

TEXTS = [
    "Das Wetter ist heute sehr schön, wir gehen in den Park und danach essen wir ein Eis.",
    "The weather is lovely today, so we are going to the park and then for an ice cream.",
    "今天天气很好，我们去公园散步，然后去吃冰淇淋。",
    "Сегодня прекрасная погода,\nмы идём в парк, а потом едим мороженое.",
]


def test_shares_are_even_by_size_and_a_small_batch_stays_whole():
    assert shares([10] * 8, 2, min_share=10) == [(0, 4), (4, 8)]
    assert shares([10] * 8, 3, min_share=10) == [(0, 3), (3, 6), (6, 8)]
    assert shares([70, 10, 10, 10], 2, min_share=10) == [(0, 1), (1, 4)]
    assert shares([10] * 8, 4, min_share=30) == [(0, 4), (4, 8)]  # 80 characters make two shares of >= 30
    assert shares([10] * 8, 4, min_share=100) == [(0, 8)]
    assert shares([], 4) == [(0, 0)]


@given(st.lists(st.integers(0, 500), max_size=40), st.integers(1, 6), st.integers(1, 300))
def test_shares_cover_every_item_once_in_order(sizes, parts, min_share):
    ranges = shares(sizes, parts, min_share)
    assert [i for start, stop in ranges for i in range(start, stop)] == list(range(len(sizes)))
    assert 1 <= len(ranges) <= max(1, parts)
    assert all(stop > start for start, stop in ranges) or ranges == [(0, 0)]


@pytest.fixture(scope="module")
def identifier(shared_dir):
    return LanguageIdentifier(word_list=shared_dir / "data" / "lcb" / "words")


def _run(pool: WorkerPool, lid: LanguageIdentifier, method: str, items: list, **kwargs):
    compute = getattr(lid, method)

    async def here(a: int, b: int) -> list:
        return compute(items[a:b], start=a, **kwargs)

    return asyncio.run(pool.run(method, items, [len(str(x)) for x in items], here, kwargs))


def test_identify_and_lcb_checks_through_children_equal_one_process(identifier):
    texts: list = [TEXTS[i % len(TEXTS)] * 4 for i in range(120)]
    texts[5], texts[117] = "", b"\xff bad"  # per-item errors in the first and the last share
    pool = WorkerPool(identifier, 3)
    try:
        assert pool.processes == 3
        got = _run(pool, identifier, "predict_raw", texts, k=2, field="texts")
        want = identifier.predict_raw(texts, k=2)
        assert [type(x) for x in got] == [type(x) for x in want]
        assert [str(x) if isinstance(x, InvalidArgument) else x for x in got] == [
            str(x) if isinstance(x, InvalidArgument) else x for x in want
        ]
        assert [str(x) for x in got if isinstance(x, InvalidArgument)] == [
            "texts[5]: empty or whitespace-only text",
            "texts[117]: invalid UTF-8 at byte 0",
        ]
        items = [(t, ("de", "en", "zh", "ru")[i % 4]) for i, t in enumerate(texts)]
        assert _run(pool, identifier, "check_language", items, metric="lcb") == identifier.check_language(
            items, metric="lcb"
        )
    finally:
        pool.close()


def test_an_error_raised_in_a_child_is_raised_to_the_caller(identifier):
    pool = WorkerPool(identifier, 2)
    try:
        items = [(TEXTS[0] * 40, "de")] * 4
        with pytest.raises(InvalidArgument, match="min_line_tokens"):
            _run(pool, identifier, "check_language", items, min_line_tokens=-1)
    finally:
        pool.close()


def test_a_dead_child_is_dropped_and_its_share_computed_here(identifier):
    pool = WorkerPool(identifier, 2)
    try:
        child = pool._workers[0].process
        os.kill(child.pid, signal.SIGKILL)
        wait_until(lambda: not alive(child.pid), 30, "the child to die")
        texts = [TEXTS[i % len(TEXTS)] * 4 for i in range(100)]
        assert _run(pool, identifier, "predict_raw", texts) == identifier.predict_raw(texts)
        assert pool.processes == 1
        assert _run(pool, identifier, "predict_raw", texts) == identifier.predict_raw(texts)
    finally:
        pool.close()


def test_a_reply_whose_caller_left_is_not_given_to_the_next_caller(identifier):
    pool = WorkerPool(identifier, 2)
    first = [TEXTS[0] * 8] * 200
    second = [TEXTS[1] * 8] * 200

    async def scenario():
        async def slow_here(a: int, b: int) -> list:
            await asyncio.sleep(30)  # the caller gives up before its own share is done
            return []

        task = asyncio.ensure_future(pool.run("predict_raw", first, [len(t) for t in first], slow_here, {}))
        await asyncio.sleep(0.2)  # the child has its share
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def here(a: int, b: int) -> list:
            return identifier.predict_raw(second[a:b], start=a)

        return await pool.run("predict_raw", second, [len(t) for t in second], here, {})

    try:
        assert asyncio.run(scenario()) == identifier.predict_raw(second)
    finally:
        pool.close()


def test_children_exit_on_their_own_once_the_parent_end_of_their_pipe_closes(identifier):
    # What happens when the serving process dies: no other copy of its pipe ends may keep them alive.
    pool = WorkerPool(identifier, 3)
    processes = [w.process for w in pool._workers]
    for worker in pool._workers:
        worker.conn.close()
    for process in processes:
        process.join(10)
    assert [p.exitcode for p in processes] == [0, 0]
    pool._workers.clear()


def test_close_ends_the_children(identifier):
    pool = WorkerPool(identifier, 3)
    pids = [w.process.pid for w in pool._workers]
    pool.close()
    assert not any(alive(pid) for pid in pids)
    assert pool.processes == 1
