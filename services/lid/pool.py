"""Worker processes that compute a share of each large batch beside the serving process.

fastText holds the GIL while it predicts, so one lid process uses one core however many its pod has,
and a caller that sends one batch at a time (a script, another team's tool) waits for one core's work.
With `workers` = N > 1 the service forks N - 1 children as it starts, before the gRPC server exists (so
no child holds gRPC state; the model's pages are shared copy-on-write, so even the 1.2 GB OpenLID model
is in memory once), and cuts every batch of at least `MIN_SHARE_CHARS` × 2 characters into contiguous
shares of about equal text: the children compute theirs while the serving process computes its own, and
the results are joined in request order. The results are those of one process, item for item.

The children are plain functions over a pipe: a request is `(seq, method, items, kwargs)` for one of
`METHODS`, the reply `(seq, result)`, or the exception the core raised, which is raised here. `seq`
lets a reply that arrives after its caller gave up (a deadline) be recognised and dropped. A child that
dies (the OOM killer) is dropped with a warning and its shares are computed by the serving process from
then on; children exit when the serving process closes the pool or dies (their pipe reaches EOF).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import multiprocessing
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)

METHODS = frozenset({"predict_raw", "check_language"})  # what a child may be asked to run
MIN_SHARE_CHARS = 4096  # below this a share costs more to ship (~50 µs) than to predict here


def shares(sizes: Sequence[int], parts: int, min_share: int = MIN_SHARE_CHARS) -> list[tuple[int, int]]:
    """At most `parts` contiguous [start, stop) ranges covering `sizes`, of about equal total size and
    none much under `min_share` (a small batch stays one range)."""
    total = sum(sizes)
    parts = max(1, min(parts, len(sizes), total // max(min_share, 1)))
    out: list[tuple[int, int]] = []
    start, done = 0, 0
    for i, size in enumerate(sizes):
        done += size
        # Close a range once its running total reaches the next equal-share boundary.
        if len(out) < parts - 1 and done * parts >= total * (len(out) + 1):
            out.append((start, i + 1))
            start = i + 1
    if start < len(sizes) or not out:
        out.append((start, len(sizes)))
    return out


def _child(target: Any, conn: Connection, parent_ends: list[Connection]) -> None:
    """A worker's life: answer requests until the pipe closes."""
    # A forked child holds copies of the parent's pipe ends (its own and its elder siblings'); while any
    # copy is open, EOF never comes and a child would outlive the parent.
    for end in parent_ends:
        end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        try:
            seq, method, items, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if method not in METHODS:
                raise ValueError(f"not a pool method: {method!r}")
            result: Any = getattr(target, method)(items, **kwargs)
        except Exception as exc:  # raised again in the parent, as the core would have raised it there
            result = exc
        try:
            conn.send((seq, result))
        except (BrokenPipeError, OSError):
            return


def _set_once(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection


class WorkerPool:
    """`workers - 1` forked children running `target`'s `METHODS` (the serving process is the Nth)."""

    def __init__(self, target: Any, workers: int):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._seq = itertools.count(1)
        self._workers: list[_Worker] = []
        context = multiprocessing.get_context("fork")  # the model is shared with the children, not reloaded
        for n in range(1, workers):
            parent_end, child_end = context.Pipe()
            parent_ends = [w.conn for w in self._workers] + [parent_end]
            process = context.Process(
                target=_child, args=(target, child_end, parent_ends), name=f"lid-worker-{n}", daemon=True
            )
            process.start()
            child_end.close()
            self._workers.append(_Worker(process, parent_end))

    @property
    def processes(self) -> int:
        """Processes that compute: the serving one and each live child."""
        return 1 + len(self._workers)

    async def run(self, method: str, items: Sequence, sizes: Sequence[int], local: Callable[[int, int], Any],
                  kwargs: dict[str, Any]) -> list:  # fmt: skip
        """`method(items[a:b], start=a, **kwargs)` over shares of `items`, concatenated in order: the first
        share through `local(a, b)` here (an awaitable returning the list), the others in the children."""
        ranges = shares(sizes, self.processes)
        if len(ranges) == 1:
            return await local(0, len(items))
        asks = []
        for worker, (a, b) in zip(self._workers, ranges[1:], strict=False):
            seq = next(self._seq)
            try:
                worker.conn.send((seq, method, list(items[a:b]), {**kwargs, "start": a}))
                asks.append((worker, seq, a, b))
            except (BrokenPipeError, OSError):
                self._drop(worker)
                asks.append((None, 0, a, b))
        out = list(await local(*ranges[0]))
        for worker, seq, a, b in asks:
            result = await self._reply(worker, seq) if worker is not None else None
            if result is None:  # the child is gone: its share is computed here
                result = await local(a, b)
            elif isinstance(result, BaseException):
                raise result
            out += result
        return out

    async def _reply(self, worker: _Worker, seq: int) -> Any:
        """The child's answer to `seq` (older answers, whose callers left, are dropped); None if it died."""
        loop = asyncio.get_running_loop()
        fd = worker.conn.fileno()
        while True:
            if not worker.conn.poll():
                ready: asyncio.Future = loop.create_future()
                loop.add_reader(fd, _set_once, ready)
                try:
                    await ready
                finally:
                    loop.remove_reader(fd)
            try:
                got, result = worker.conn.recv()
            except (EOFError, OSError):
                self._drop(worker)
                return None
            if got == seq:
                return result

    def _drop(self, worker: _Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
            worker.conn.close()
            lost = {"event": "lid_worker_lost", "worker": worker.process.name, "exitcode": worker.process.exitcode}
            log.warning(json.dumps({**lost, "processes_left": self.processes}))

    def close(self, timeout: float = 5.0) -> None:
        """Close the pipes (children exit at EOF) and reap them; those that do not exit are killed."""
        for worker in self._workers:
            worker.conn.close()
        for worker in self._workers:
            worker.process.join(timeout)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout)
        self._workers.clear()
