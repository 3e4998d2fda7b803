"""Dynamic batching on the model thread, with a plain function in place of the model."""

from __future__ import annotations

import threading
import time

import pytest

from services.common.errors import ResourceExhausted, Unavailable
from services.generator.backends.batching import BatchWorker, Job, padded_cost


class Recorder:
    """A 'model' that answers each row with its own payload and remembers the batches it was given."""

    def __init__(self, delay: float = 0.0, oom_above: int | None = None):
        self.batches: list[list] = []
        self.delay = delay
        self.oom_above = oom_above
        self.thread_names: set[str] = set()

    def __call__(self, kind: str, adapter: str, jobs: list[Job]) -> None:
        self.thread_names.add(threading.current_thread().name)
        if self.oom_above is not None and any(j.length > self.oom_above for j in jobs):
            raise MemoryError("simulated allocation failure")
        self.batches.append([(kind, adapter, j.row) for j in jobs])
        time.sleep(self.delay)
        for job in jobs:
            job.future.set_result(job.row)


def job(row, *, kind="generate", adapter="", length=4, new_tokens=4) -> Job:
    return Job(kind, row, adapter, length, new_tokens)


@pytest.fixture
def make_worker():
    workers = []

    def make(run, **kwargs) -> BatchWorker:
        kwargs.setdefault("window_s", 0.05)
        worker = BatchWorker(run, **kwargs)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.close()


def test_rows_submitted_together_run_as_one_batch_on_the_model_thread(make_worker):
    model = Recorder()
    worker = make_worker(model, name="model-thread")
    futures = worker.submit([job(i) for i in range(5)])
    assert [f.result(5) for f in futures] == [0, 1, 2, 3, 4]
    assert len(model.batches) == 1
    assert model.thread_names == {"model-thread"}


def test_requests_within_the_window_share_a_batch(make_worker):
    model = Recorder()
    worker = make_worker(model, window_s=0.2)
    barrier = threading.Barrier(4)
    results = []

    def client(i: int) -> None:
        barrier.wait()
        results.append(worker.submit([job(i)])[0].result(5))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1, 2, 3]
    assert len(model.batches) == 1


def test_batches_group_by_kind_and_adapter_and_respect_limits(make_worker):
    model = Recorder()
    worker = make_worker(model, max_batch_size=2, max_batch_tokens=100)
    futures = worker.submit(
        [job("a1"), job("b1", adapter="b"), job("a2"), job("a3"), job("s1", kind="score", new_tokens=0)]
    )
    for f in futures:
        f.result(5)
    groups = [[row for _, _, row in batch] for batch in model.batches]
    assert groups == [["a1", "a2"], ["b1"], ["a3"], ["s1"]]
    assert all(len({(k, a) for k, a, _ in batch}) == 1 for batch in model.batches)


def test_padded_token_budget_splits_batches(make_worker):
    model = Recorder()
    worker = make_worker(model, max_batch_tokens=40)
    futures = worker.submit([job(i, length=10, new_tokens=10) for i in range(3)])  # 2 rows × 20 = 40 fit
    for f in futures:
        f.result(5)
    assert [len(b) for b in model.batches] == [2, 1]
    assert padded_cost([job(0, length=10, new_tokens=10)] * 2) == 40


def test_rows_are_not_padded_past_the_models_positions(make_worker):
    model = Recorder()
    worker = make_worker(model, max_span=100)
    long_prompt = job("long prompt, few new tokens", length=90, new_tokens=10)
    long_output = job("short prompt, many new tokens", length=10, new_tokens=90)
    for f in worker.submit([long_prompt, long_output]):
        f.result(5)
    assert [len(b) for b in model.batches] == [1, 1]  # together: 90 + 90 > 100 positions


def test_control_calls_are_barriers(make_worker):
    model = Recorder(delay=0.05)
    worker = make_worker(model)
    order: list[str] = []
    first = worker.submit([job("before")])
    done = threading.Event()

    def control() -> None:
        worker.call(lambda: order.append("call"))
        done.set()

    t = threading.Thread(target=control)
    t.start()
    time.sleep(0.01)
    after = worker.submit([job("after")])
    first[0].add_done_callback(lambda f: order.append(f.result()))
    after[0].add_done_callback(lambda f: order.append(f.result()))
    after[0].result(5)
    t.join()
    assert order == ["before", "call", "after"]


def test_out_of_memory_splits_the_batch_and_fails_only_the_row_that_cannot_fit(make_worker):
    model = Recorder(oom_above=100)
    worker = make_worker(model)
    futures = worker.submit([job("small-1"), job("huge", length=500), job("small-2")])
    assert futures[0].result(5) == "small-1"
    assert futures[2].result(5) == "small-2"
    with pytest.raises(ResourceExhausted):
        futures[1].result(5)
    # ... and the worker keeps serving.
    assert worker.submit([job("later")])[0].result(5) == "later"


def test_cancelled_rows_never_reach_the_model(make_worker):
    model = Recorder(delay=0.2)
    worker = make_worker(model, window_s=0.0)
    first = worker.submit([job("running")])
    time.sleep(0.05)  # "running" is on the model now; the next rows queue behind it
    queued = worker.submit([job("cancelled"), job("kept")])
    assert queued[0].cancel()
    assert queued[1].result(5) == "kept"
    assert first[0].result(5) == "running"
    assert all(row != "cancelled" for batch in model.batches for _, _, row in batch)


def test_a_backend_error_fails_that_batch_only(make_worker):
    calls = []

    def flaky(kind, adapter, jobs):
        calls.append(len(jobs))
        if len(calls) == 1:
            raise ValueError("boom")
        for j in jobs:
            j.future.set_result("ok")

    worker = make_worker(flaky)
    with pytest.raises(ValueError):
        worker.submit([job(1)])[0].result(5)
    assert worker.submit([job(2)])[0].result(5) == "ok"


def test_close_fails_what_is_still_queued(make_worker):
    model = Recorder(delay=0.3)
    worker = make_worker(model, window_s=0.0)
    worker.submit([job("running")])
    time.sleep(0.05)
    queued = worker.submit([job("queued", adapter="other")])
    worker.close()
    with pytest.raises(Unavailable):
        queued[0].result(5)
    with pytest.raises(Unavailable):
        worker.submit([job("late")])
