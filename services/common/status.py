"""Status codes on the wire ↔ domain errors: the one place that knows `ItemStatus` and `grpc.RpcError`.

Servicers report a failed item with `item_status(error)`; clients read it back with `item_error(status)`
(an `ItemError` dataclass, or None), and turn a failed call into the matching `services.common.errors`
class with `domain_error(exc)`.
"""

from __future__ import annotations

import grpc
from polyglot.v1 import common_pb2

from services.common.errors import ItemError, PolyglotError, error_for

_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
_VALUES = {name: value for value, name in _NAMES.items()}
OK = common_pb2.ItemStatus(code=0)


def item_status(error: PolyglotError | ItemError | None, note: str = "") -> common_pb2.ItemStatus:
    """The wire status of one item; `note` says why a successful item is as it is (the judge's gate)."""
    if error is None:
        return common_pb2.ItemStatus(code=0, message=note) if note else OK
    return common_pb2.ItemStatus(
        code=_VALUES.get(error.code, _VALUES["INTERNAL"]), message=error.message, field=error.field or ""
    )


def item_error(status: common_pb2.ItemStatus) -> ItemError | None:
    """None for an item that succeeded (code 0), else why it failed."""
    if not status.code:
        return None
    return ItemError(_NAMES.get(status.code, "UNKNOWN"), status.message, status.field or None)


def domain_error(exc: grpc.RpcError) -> PolyglotError:
    """A failed call as its domain error (`NotFound`, `InvalidArgument`, ...); `grpc_code` keeps the wire code."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    detail = exc.details() if hasattr(exc, "details") else str(exc)
    err = error_for(code.name, detail or code.name)
    err.grpc_code = code  # type: ignore[attr-defined]
    return err
