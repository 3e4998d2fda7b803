"""Domain errors raised by core libraries, mapped to gRPC status codes in one place.

Core code never imports grpc: it raises these, and the runtime's interceptor
(`services.common.server`) turns them into status codes. Clients turn status codes
back into the same classes (`services.common.status`), so a flow catches
`NotFound` whether the store or a remote service raised it. Every service's own errors
subclass these (the judge's `ProviderError`, `TransientError`).
"""

from __future__ import annotations

from dataclasses import dataclass


class PolyglotError(Exception):
    """Base of every error that crosses a component boundary on purpose.

    A subclass names its status code once, `class NotFound(PolyglotError, code="NOT_FOUND")`, which also
    registers it in `BY_CODE`; an instance may carry another code (a status with no class of its own).
    """

    code = "INTERNAL"  # name of the grpc.StatusCode member

    def __init_subclass__(cls, code: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code
            BY_CODE[code] = cls

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        self.field = field
        self.message = message
        if code is not None:
            self.code = code
        super().__init__(f"{field}: {message}" if field else message)


BY_CODE: dict[str, type[PolyglotError]] = {}
"""Status code name → the class clients raise for it (filled as the classes below are defined)."""


class InvalidArgument(PolyglotError, code="INVALID_ARGUMENT"):
    """Bad input; `field` names the offending request field (dotted path, e.g. `items[3].text`)."""


class NotFound(PolyglotError, code="NOT_FOUND"):
    """A named thing (artifact, adapter, job, model) does not exist."""


class AlreadyExists(PolyglotError, code="ALREADY_EXISTS"):
    """A named thing exists and may not be made again."""


class FailedPrecondition(PolyglotError, code="FAILED_PRECONDITION"):
    """The system is not in a state to do this (no model configured, a job that did not succeed)."""


class ResourceExhausted(PolyglotError, code="RESOURCE_EXHAUSTED"):
    """Too large for memory or a quota; the server keeps serving other calls."""


class Unauthenticated(PolyglotError, code="UNAUTHENTICATED"):
    """No credentials, or ones the service does not know (services/common/auth.py)."""


class PermissionDenied(PolyglotError, code="PERMISSION_DENIED"):
    """Credentials were rejected (e.g. a wrong S3 secret)."""


class Unavailable(PolyglotError, code="UNAVAILABLE"):
    """A transient failure worth retrying (a dependency is down or overloaded)."""


class Cancelled(PolyglotError, code="CANCELLED"):
    """The caller or the server's shutdown cancelled the call."""


class DeadlineExceeded(PolyglotError, code="DEADLINE_EXCEEDED"):
    """The call ran out of time; worth retrying, as Unavailable."""


TRANSIENT: tuple[type[PolyglotError], ...] = (Unavailable, DeadlineExceeded)
"""What may pass on a second try: client retries, the judge's providers and the study's task retries."""
TRANSIENT_CODES = frozenset(cls.code for cls in TRANSIENT)


def error_for(code: str, message: str, field: str | None = None) -> PolyglotError:
    """The domain error for a status code name; codes without a class keep their name on a PolyglotError."""
    cls = BY_CODE.get(code)
    return cls(message, field=field) if cls else PolyglotError(message, field=field, code=code)


@dataclass(frozen=True)
class ItemError:
    """Why one item of a batch call failed, while its neighbours succeeded (wire: `ItemStatus`)."""

    code: str  # a grpc.StatusCode name: UNAVAILABLE, PERMISSION_DENIED, INVALID_ARGUMENT, INTERNAL, ...
    message: str
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message
