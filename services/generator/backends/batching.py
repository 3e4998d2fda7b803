"""Dynamic batching on one model thread: rows that arrive within a short window share one padded call.

All model work of a backend runs on the single thread this module owns, so the event loop never blocks
and adapter switches can never race with a running batch. Rows queue up; the worker takes the oldest row,
waits `window_s` for company, then runs every queued row of the same kind and adapter that fits the batch
limits (row count and padded tokens) in one call. Control calls (loading an adapter) are barriers: rows
queued after one never jump ahead of it. A batch that runs out of memory is split in halves and retried;
a single row that still does not fit fails alone with RESOURCE_EXHAUSTED, and the others are served. A
batch that fails otherwise is split the same way, so the error reaches only the row that raises it.

No torch or grpc imports: backends pass their own `run` and `is_oom`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from services.common.errors import ResourceExhausted, Unavailable

log = logging.getLogger("polyglot.generator.batching")


@dataclass(eq=False)
class Job:
    """One queued row: `kind` + `adapter` decide who may share its batch; `length`/`new_tokens` its cost."""

    kind: str
    row: Any
    adapter: str
    length: int
    new_tokens: int = 0
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class _Call:
    fn: Callable[[], Any]
    future: Future = field(default_factory=Future)


def padded_cost(jobs: list[Job]) -> int:
    """Tokens a left-padded batch occupies: rows × (longest prompt + most new tokens)."""
    if not jobs:
        return 0
    return len(jobs) * (max(j.length for j in jobs) + max(j.new_tokens for j in jobs))


class BatchWorker:
    """Owns the model thread. `run(kind, adapter, jobs)` executes one batch and resolves the jobs' futures
    (it may resolve some early, e.g. rows that finish before the others); what it leaves unresolved fails."""

    def __init__(
        self,
        run: Callable[[str, str, list[Job]], None],
        *,
        max_batch_size: int = 32,
        max_batch_tokens: int = 65536,
        max_span: int | None = None,
        window_s: float = 0.005,
        is_oom: Callable[[BaseException], bool] = lambda exc: isinstance(exc, MemoryError),
        name: str = "generator-model",
    ):
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        # Longest prompt + most new tokens in one batch: padding must not push a row past the model's
        # positions (a short row's pad steps still advance its position ids).
        self.max_span = max_span
        self.window_s = window_s
        self._is_oom = is_oom
        self._queue: queue.SimpleQueue[Job | _Call | None] = queue.SimpleQueue()
        self._backlog: deque[Job | _Call] = deque()
        self._closed = threading.Event()
        self.batches_run = 0  # for tests and the benchmark: how many model calls were made
        self.rows_run = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # -- API (any thread) -------------------------------------------------------------------------------

    def submit(self, jobs: list[Job]) -> list[Future]:
        if self._closed.is_set():
            raise Unavailable("the generator is shutting down")
        for job in jobs:
            self._queue.put(job)
        return [job.future for job in jobs]

    def call(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run `fn` on the model thread, after every row queued before it; blocks for its result."""
        if self._closed.is_set():
            raise Unavailable("the generator is shutting down")
        item = _Call(fn)
        self._queue.put(item)
        return item.future.result(timeout)

    def close(self, timeout: float = 30.0) -> None:
        self._closed.set()
        self._queue.put(None)
        self._thread.join(timeout)

    # -- the model thread -------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            if not self._backlog:
                item = self._queue.get()
                if item is None:
                    break
                self._backlog.append(item)
            head = self._backlog[0]
            if isinstance(head, _Call):
                self._backlog.popleft()
                self._run_call(head)
                continue
            if not self._gather(head):
                break
            batch = self._take_batch(head)
            batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if batch:
                self._run_split(head.kind, head.adapter, batch)
        self._fail_pending()

    def _run_call(self, item: _Call) -> None:
        if not item.future.set_running_or_notify_cancel():
            return
        try:
            item.future.set_result(item.fn())
        except BaseException as exc:
            item.future.set_exception(exc)

    def _matching(self, head: Job) -> int:
        count = 0
        for item in self._backlog:
            if isinstance(item, _Call):
                break
            count += item.kind == head.kind and item.adapter == head.adapter
        return count

    def _gather(self, head: Job) -> bool:
        """Wait until `head` has been queued `window_s`, or enough rows to fill a batch arrived."""
        deadline = head.arrived + self.window_s
        while True:
            try:
                while True:
                    item = self._queue.get_nowait()
                    if item is None:
                        return False
                    self._backlog.append(item)
            except queue.Empty:
                pass
            if self._matching(head) >= self.max_batch_size:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                return True
            if item is None:
                return False
            self._backlog.append(item)

    def _take_batch(self, head: Job) -> list[Job]:
        batch: list[Job] = []
        keep: deque[Job | _Call] = deque()
        barrier = False
        while self._backlog:
            item = self._backlog.popleft()
            if barrier or isinstance(item, _Call):
                barrier = True
                keep.append(item)
                continue
            fits = (
                item.kind == head.kind
                and item.adapter == head.adapter
                and len(batch) < self.max_batch_size
                and (not batch or self._fits([*batch, item]))
            )
            (batch if fits else keep).append(item)
        self._backlog = keep
        return batch

    def _fits(self, jobs: list[Job]) -> bool:
        if padded_cost(jobs) > self.max_batch_tokens:
            return False
        span = max(j.length for j in jobs) + max(j.new_tokens for j in jobs)
        return self.max_span is None or span <= self.max_span

    def _run_split(self, kind: str, adapter: str, jobs: list[Job]) -> None:
        try:
            self.batches_run += 1
            self.rows_run += len(jobs)
            self._run(kind, adapter, jobs)
        except BaseException as exc:
            pending = [job for job in jobs if not job.future.done()]
            if self._is_oom(exc):
                log.warning("out of memory on a batch of %d rows (%d unfinished); splitting", len(jobs), len(pending))
                if len(pending) > 1:
                    half = len(pending) // 2
                    self._run_split(kind, adapter, pending[:half])
                    self._run_split(kind, adapter, pending[half:])
                    return
                for job in pending:
                    job.future.set_exception(
                        ResourceExhausted(
                            f"one row of {job.length} prompt tokens + {job.new_tokens} new tokens does not fit "
                            "in memory; shorten the prompt or lower max_tokens"
                        )
                    )
                return
            if len(pending) > 1:
                # One row's failure (a numerical one the backend did not catch, a constraint that raised) must
                # not fail the requests that shared its batch: halves are retried until the culprit is alone.
                log.warning("a batch of %d %s rows failed (%s: %s); retrying in halves", len(pending), kind,
                            type(exc).__name__, exc)
                half = len(pending) // 2
                self._run_split(kind, adapter, pending[:half])
                self._run_split(kind, adapter, pending[half:])
                return
            log.exception("batch of %d %s rows failed", len(jobs), kind)
            for job in pending:
                job.future.set_exception(exc)
            return
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(RuntimeError(f"backend left a {kind} row unanswered"))

    def _fail_pending(self) -> None:
        leftovers: list[Job | _Call] = list(self._backlog)
        try:
            while True:
                item = self._queue.get_nowait()
                if item is not None:
                    leftovers.append(item)
        except queue.Empty:
            pass
        for item in leftovers:
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(Unavailable("the generator shut down before this row ran"))
