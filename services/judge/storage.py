"""The judge's store calls (reply cache, usage account): retried, and failures given a retryable code.

A store that blips (S3 restarting, a network hiccup) or a full disk must never turn into a graded item
marked ERROR that a study stores as done (issue 19, row 7). Every read and write of the judge's own
objects goes through `store_call`: answers (NotFound, a corrupt object, a bad key) pass through as they
are; anything else is retried `attempts` times and then raised as `Unavailable`, or `ResourceExhausted`
for a full disk or quota, naming what the judge was doing.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from typing import Any, TypeVar

from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PolyglotError,
    ResourceExhausted,
    Unavailable,
)

T = TypeVar("T")
_ANSWERS = (NotFound, FailedPrecondition, InvalidArgument)  # what the store says, not how it failed
_FULL = {errno.ENOSPC, errno.EDQUOT}
FIRST_BACKOFF_S = 0.05


def store_failure(exc: BaseException, what: str) -> PolyglotError:
    """`exc` from a store call as the error a caller can act on."""
    if isinstance(exc, ResourceExhausted) or (isinstance(exc, OSError) and exc.errno in _FULL):
        return ResourceExhausted(f"the judge's store is full: could not {what} ({exc})")
    return Unavailable(f"the judge's store failed: could not {what} ({type(exc).__name__}: {exc})")


async def store_call(fn: Callable[..., T], *args: Any, what: str, attempts: int = 3) -> T:
    """`fn(*args)` in a thread, retried with a short back-off; see the module docstring for the errors."""
    for attempt in range(attempts):
        try:
            return await asyncio.to_thread(fn, *args)
        except _ANSWERS:
            raise
        except Exception as exc:  # OSError, Unavailable, a client library's own error: the store failed
            if attempt + 1 == attempts:
                raise store_failure(exc, what) from exc
            await asyncio.sleep(FIRST_BACKOFF_S * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover
