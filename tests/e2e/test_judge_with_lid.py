"""End to end: `polyglot serve lid` and `polyglot serve judge` as real processes, the judge's LLM a scripted
OpenAI-compatible server on 127.0.0.1, replies from the real OASST data in ../shared.

Nothing is mocked between the client and the model endpoint: the judge process asks the lid process
(lid.176) for each reply's language, gates wrong-language replies to score 1 without a request, and sends
the rest through the real `openai` client. A second run of the batch makes zero HTTP requests.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from services.common.local import LocalServices
from services.judge.client import JudgeClient
from services.judge.records import GradeItem, Outcome
from tests.fixtures.judge import TEST_API_KEY, oasst_replies


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def services(openai_server, tmp_path: Path):
    ports = {"lid": _free_port(), "judge": _free_port()}
    env = {
        "POLYGLOT_JUDGE_BASE_URL": openai_server.base_url,
        "OPENAI_API_KEY": TEST_API_KEY,
        "POLYGLOT_JUDGE_LID_ADDRESS": f"127.0.0.1:{ports['lid']}",
        "POLYGLOT_JUDGE_STORE_URI": (tmp_path / "store").as_uri(),
        "POLYGLOT_JUDGE_BACKOFF_INITIAL": "0.01",
        "POLYGLOT_JUDGE_LOG_LEVEL": "DEBUG",  # so that the openai client logs too
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    with LocalServices(["lid", "judge"], ports=ports, env=env, log_dir=logs, grace=2) as running:
        running.wait_healthy(timeout=120)
        yield running, logs


@pytest.mark.slow
def test_language_gate_end_to_end_with_the_real_lid_service(services, openai_server, shared_dir: Path):
    running, logs = services
    ru = oasst_replies(shared_dir, "ru", 2)
    de = oasst_replies(shared_dir, "de", 2)
    zh = oasst_replies(shared_dir, "zh", 1)
    es = oasst_replies(shared_dir, "es", 1)
    items = [
        *(GradeItem(p, r, "ru", id=f"ru-ru-{i}") for i, (p, r) in enumerate(ru)),  # right language
        *(GradeItem(p, r, "de", id=f"ru-de-{i}") for i, (p, r) in enumerate(ru)),  # Russian where German was asked
        *(GradeItem(p, r, "de", id=f"de-de-{i}") for i, (p, r) in enumerate(de)),
        *(GradeItem(p, r, "zh", id=f"zh-zh-{i}") for i, (p, r) in enumerate(zh)),
        *(GradeItem(p, r, "en", id=f"es-en-{i}") for i, (p, r) in enumerate(es)),  # Spanish where English was asked
    ]
    with JudgeClient(running.addresses["judge"], timeout=120) as judge:
        graded = judge.grade(items, run_id="e2e")
        outcomes = {r.id: (r.outcome, r.score, r.detected_language) for r in graded.records}
        assert outcomes == {
            "ru-ru-0": (Outcome.GRADED, 4, "ru"),
            "ru-ru-1": (Outcome.GRADED, 4, "ru"),
            "ru-de-0": (Outcome.LANGUAGE_MISMATCH, 1, "ru"),
            "ru-de-1": (Outcome.LANGUAGE_MISMATCH, 1, "ru"),
            "de-de-0": (Outcome.GRADED, 4, "de"),
            "de-de-1": (Outcome.GRADED, 4, "de"),
            "zh-zh-0": (Outcome.GRADED, 4, "zh"),
            "es-en-0": (Outcome.LANGUAGE_MISMATCH, 1, "es"),
        }
        assert openai_server.count == 5  # one request per reply in the right language, none for the others
        sent = "\n".join(r.text for r in openai_server.requests)
        assert not any(r in sent for _, r in es) and sent.count(ru[0][1]) == 1

        again = judge.grade(items, run_id="e2e")
        assert openai_server.count == 5  # the rerun makes zero HTTP requests
        assert [r.cached for r in again.records if r.outcome is Outcome.GRADED] == [True] * 5

        usage = judge.usage("e2e")
        assert (usage.requests, usage.cached) == (5, 5) and usage.cost_usd > 0
    log = (logs / "judge.log").read_text(encoding="utf-8", errors="replace")
    assert '"method": "Grade"' in log and "Sending HTTP Request" in log  # DEBUG: the openai client logged
    assert TEST_API_KEY not in log
