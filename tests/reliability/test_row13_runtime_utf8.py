"""Row 13 (the runtime's half): a request with invalid UTF-8 in a string field, or corrupt protobuf, failed
with UNKNOWN ("Unexpected DecodeError"), was neither logged as a call nor counted. Reproduced before the
fix against the real lid service: UNKNOWN, and no `polyglot_rpc_calls_total` sample moved.

Remedy (services/common/interceptor.py): the runtime decodes every request itself, after the caller's
credentials are checked; bytes that do not parse are INVALID_ARGUMENT naming `request`, logged as a call,
and counted in `polyglot_rpc_undecodable_requests_total` and `polyglot_rpc_calls_total`.
"""

from __future__ import annotations

import json
import logging

import grpc
import pytest
from polyglot.v1 import lid_pb2, lid_pb2_grpc
from prometheus_client import REGISTRY

METHOD = "/polyglot.v1.LidService/CheckLanguage"


def _sample(name: str, **labels: str) -> float:
    labels = {"service": "polyglot.v1.LidService", "method": "CheckLanguage", **labels}
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _bad_utf8() -> bytes:
    """A well-formed CheckLanguageRequest whose string field `expected_language` holds invalid UTF-8."""
    valid = lid_pb2.CheckLanguageRequest(
        items=[lid_pb2.LanguageCheck(string="hello world", expected_language="QQ")]
    ).SerializeToString()
    return valid.replace(b"QQ", b"\xff\xfe")


@pytest.mark.parametrize("payload", [_bad_utf8(), b"\xff\xff\xff\xff"], ids=["invalid-utf8", "corrupt"])
def test_undecodable_requests_are_invalid_argument_logged_and_counted(lid_service, caplog, payload):
    undecodable = _sample("polyglot_rpc_undecodable_requests_total")
    invalid = _sample("polyglot_rpc_calls_total", code="INVALID_ARGUMENT")
    with caplog.at_level(logging.WARNING, logger="polyglot.rpc"), grpc.insecure_channel(lid_service) as channel:
        with pytest.raises(grpc.RpcError) as failed:
            channel.unary_unary(METHOD)(payload, timeout=10)
        # The channel still serves a good request afterwards.
        reply = lid_pb2_grpc.LidServiceStub(channel).CheckLanguage(
            lid_pb2.CheckLanguageRequest(items=[lid_pb2.LanguageCheck(string="hello world", expected_language="en")]),
            timeout=30,
        )
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failed.value.details().startswith("request: ")
    assert len(reply.results) == 1
    assert _sample("polyglot_rpc_undecodable_requests_total") == undecodable + 1
    assert _sample("polyglot_rpc_calls_total", code="INVALID_ARGUMENT") == invalid + 1
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "polyglot.rpc"]
    assert [(r["method"], r["code"]) for r in logged] == [("CheckLanguage", "INVALID_ARGUMENT")]
