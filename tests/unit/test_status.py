"""The one status mapper: domain errors → `ItemStatus` (servicers) → `ItemError` (clients), and one hierarchy."""

from __future__ import annotations

import grpc
import pytest
from polyglot.v1 import common_pb2

from services.common import errors
from services.common.errors import ItemError, PolyglotError
from services.common.status import item_error, item_status
from services.judge.generator_provider import failure
from services.judge.providers import ProviderError, TransientError


@pytest.mark.parametrize("cls", sorted(errors.BY_CODE.values(), key=lambda c: c.code))
def test_every_domain_error_round_trips_through_the_wire(cls):
    status = item_status(cls("bad text", field="texts[3]"))
    assert status.code == grpc.StatusCode[cls.code].value[0]
    error = item_error(status)
    assert error == ItemError(cls.code, "bad text", "texts[3]")
    assert str(error) == str(cls("bad text", field="texts[3]")) == "texts[3]: bad text"


def test_success_is_no_error_and_may_carry_a_note():
    assert item_error(item_status(None)) is None
    noted = item_status(None, note="gate: wrong language")
    assert (noted.code, noted.message) == (0, "gate: wrong language") and item_error(noted) is None


def test_codes_without_a_class_keep_their_name():
    error = item_error(common_pb2.ItemStatus(code=grpc.StatusCode.ABORTED.value[0], message="batch aborted"))
    assert error == ItemError("ABORTED", "batch aborted") and error.field is None
    raised = errors.error_for("ABORTED", "batch aborted")
    assert type(raised) is PolyglotError and raised.code == "ABORTED"
    assert type(errors.error_for("NOT_FOUND", "gone")) is errors.NotFound
    assert item_status(ItemError("NOT_A_CODE", "x")).code == grpc.StatusCode.INTERNAL.value[0]


def test_service_errors_are_domain_errors():
    assert issubclass(TransientError, errors.Unavailable) and isinstance(TransientError("HTTP 503"), errors.TRANSIENT)
    rejected = ProviderError("HTTP 401: bad key", "PERMISSION_DENIED")
    assert isinstance(rejected, PolyglotError) and rejected.code == "PERMISSION_DENIED"
    assert item_error(item_status(rejected)) == ItemError("PERMISSION_DENIED", "HTTP 401: bad key")
    assert {"UNAVAILABLE", "DEADLINE_EXCEEDED"} == errors.TRANSIENT_CODES


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        ("UNAVAILABLE", True),
        ("DEADLINE_EXCEEDED", True),
        ("RESOURCE_EXHAUSTED", True),  # a full generator takes the request later
        ("ABORTED", True),
        ("INVALID_ARGUMENT", False),
        ("NOT_FOUND", False),
    ],
)
def test_the_judge_sorts_generator_failures_in_one_place(code, transient):
    error = failure(code, "why")
    assert isinstance(error, TransientError) is transient
    assert error.code == ("UNAVAILABLE" if transient else code)
