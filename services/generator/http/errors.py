"""Errors as OpenAI clients expect them: an HTTP status and `{"error": {"message", "type", "param", "code"}}`.

The core raises `services.common.errors` with a gRPC code name and the offending field in the core's own
terms (`sampling.temperature`, `prompts[2]`, `adapter`); here the code picks the status and the field is
renamed to the request's (`temperature`, `prompt[2]`, `model`). Bad JSON or a field of the wrong shape is
400, as in OpenAI's API (FastAPI's default would be 422).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.common.errors import PolyglotError
from services.generator.http.schema import ErrorBody, ErrorResponse

STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
# The core's field names → the OpenAI request's.
_RENAMES = [
    (re.compile(r"^sampling\."), ""),
    (re.compile(r"^prompts"), "prompt"),
    (re.compile(r"^(adapter|uri|name)$"), "model"),
    (re.compile(r"^structured\..*"), "response_format"),
]
_NESTED = {"content", "role", "text", "type"}


def openai_param(field: str | None, *, single_prompt: bool = False, chat: bool = False) -> str | None:
    if not field:
        return None
    for pattern, replacement in _RENAMES:
        field = pattern.sub(replacement, field)
    if field.startswith("prompt"):
        if chat:
            return "messages"
        if single_prompt:
            return re.sub(r"^prompt\[0\]", "prompt", field)
    return field


def error_response(status: int, message: str, *, param: str | None, code: str | None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = ErrorResponse(error=ErrorBody(message=message, type=kind, param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status)


def from_domain(exc: PolyglotError, param: str | None) -> JSONResponse:
    status = STATUS.get(exc.code, 500)
    code = "model_not_found" if status == 404 and param == "model" else exc.code.lower()
    return error_response(status, exc.message, param=param, code=code)


def loc_param(loc: Sequence[str | int]) -> str | None:
    """pydantic's error location → an OpenAI param: `('body', 'messages', 0, 'content')` → `messages[0].content`.
    Union branches (`'list[int]'`) and the like end the path."""
    parts = [p for p in loc if p != "body"]
    if not parts or not isinstance(parts[0], str):
        return None
    param = parts[0]
    for part in parts[1:]:
        if isinstance(part, int):
            param += f"[{part}]"
        elif part in _NESTED:
            param += f".{part}"
        else:
            break
    return param


async def validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    return error_response(400, message, param=loc_param(first.get("loc", ())), code="invalid_argument")
