"""Row 16: the generator logged a request's `request_id` and `adapter` as sent, so a newline in one wrote a
second, forged log line (`... INFO polyglot.trainer job finished`). Reproduced before the fix: the log
message of a Score call held the raw newline.

Remedy (services/common/interceptor.py `log_field`, used by services/generator/servicer.py): text a client
chose is logged with control characters escaped and cut to 200 characters; the runtime's own call log is
JSON, whose strings are escaped already. (Errors that tell whether a file:// path exists are confinement,
left to the store's roots; see docs/security.md.)
"""

from __future__ import annotations

import logging

import pytest

from services.common.errors import NotFound
from services.common.interceptor import log_field

FORGED = "r1\n2026-01-01 00:00:00,000 INFO polyglot.trainer job finished\x1b[2J"


def test_log_field_escapes_control_characters_and_bounds_length():
    assert log_field("plain id-42") == "plain id-42"
    assert log_field("a\nb\tc\x1b") == "a\\nb\\tc\\x1b"
    assert log_field("ü") == "ü"  # printable text stays readable
    assert len(log_field("x" * 10_000)) == 203


def test_a_newline_in_request_id_or_adapter_forges_no_log_line(generator_client, caplog):
    with caplog.at_level(logging.INFO):
        generator_client.score([("Hello", " world")], request_id=FORGED)
        with pytest.raises(NotFound):
            generator_client.score([("Hello", " world")], adapter="evil\nINFO polyglot forged")
    lines = [r.getMessage() for r in caplog.records if r.name in ("polyglot.generator", "polyglot.rpc")]
    scored = [line for line in lines if line.startswith("score ")]
    assert len(scored) == 2
    assert not [line for line in lines if "\n" in line or "\x1b" in line]
    assert "request_id=r1\\n2026-01-01" in scored[0] and "adapter=evil\\nINFO" in scored[1]
