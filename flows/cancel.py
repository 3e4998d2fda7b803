"""The stop switch of a local study run: flipped once (Ctrl-C, SIGTERM), it ends the run's service calls.

`flows.local` runs the flow in a worker thread and flips the switch from the main thread. Closing the
clients the flow registered makes calls in flight fail with CANCELLED and new ones fail at once; tasks not
yet started see `requested()` and do not start; nothing is retried. What was finished stays in the store
(every step writes its key last), so a rerun resumes from there.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Protocol

from services.common.errors import Cancelled


class Closable(Protocol):
    def close(self) -> None: ...


_requested = threading.Event()
_lock = threading.Lock()
_open: list[Closable] = []


def requested() -> bool:
    return _requested.is_set()


def raise_if_requested() -> None:
    if _requested.is_set():
        raise Cancelled("the study run was interrupted")


def track(clients: Closable) -> Closable:
    """Register clients to close on `request()`; closed at once if the switch is already flipped."""
    with _lock:
        _open.append(clients)
    if _requested.is_set():
        clients.close()
    return clients


def untrack(clients: Closable) -> None:
    with _lock:
        if clients in _open:
            _open.remove(clients)


def request() -> None:
    """Flip the switch and close every tracked client (from any thread)."""
    _requested.set()
    with _lock:
        pending = list(_open)
    for clients in pending:
        with contextlib.suppress(Exception):  # a half-closed client must not stop the others from closing
            clients.close()
