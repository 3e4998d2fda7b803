"""Domain errors raised by core libraries, mapped to gRPC status codes in one place.

Core code never imports grpc: it raises these, and the runtime's interceptor
(`services.common.server`) turns them into status codes. Clients turn status codes
back into the same classes (`services.common.client`), so a flow catches
`NotFound` whether the store or a remote service raised it.
"""

from __future__ import annotations


class PolyglotError(Exception):
    """Base of every error that crosses a component boundary on purpose."""

    code = "INTERNAL"  # name of the grpc.StatusCode member

    def __init__(self, message: str, *, field: str | None = None):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class InvalidArgument(PolyglotError):
    """Bad input; `field` names the offending request field (dotted path, e.g. `items[3].text`)."""

    code = "INVALID_ARGUMENT"


class NotFound(PolyglotError):
    """A named thing (artifact, adapter, job, model) does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(PolyglotError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(PolyglotError):
    code = "FAILED_PRECONDITION"


class ResourceExhausted(PolyglotError):
    """Too large for memory or a quota; the server keeps serving other calls."""

    code = "RESOURCE_EXHAUSTED"


class PermissionDenied(PolyglotError):
    """Credentials were rejected (e.g. a wrong S3 secret)."""

    code = "PERMISSION_DENIED"


class Unavailable(PolyglotError):
    """A transient failure worth retrying (a dependency is down or overloaded)."""

    code = "UNAVAILABLE"


class Cancelled(PolyglotError):
    code = "CANCELLED"


class DeadlineExceeded(PolyglotError):
    code = "DEADLINE_EXCEEDED"


BY_CODE: dict[str, type[PolyglotError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        PermissionDenied,
        Unavailable,
        Cancelled,
        DeadlineExceeded,
    )
}
