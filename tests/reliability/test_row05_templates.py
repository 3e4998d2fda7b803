"""Row 5: a judge template `file:///dev/zero` grew the judge to 2.3 GB in 14 s (OOM-killed at its 1 Gi limit);
a FIFO template blocked every Grade and SIGTERM no longer stopped the process. Reproduced before the fix:
loading `file:///dev/zero` raised MemoryError within a second under a 1 GiB address-space limit, and loading
a FIFO was still blocked after 3 s (and a blocked thread keeps `asyncio.run` from returning at shutdown).

Remedy (services/judge/prompts.py): a template URI must lie under a template root (the configured
`template_roots`, the judge's store, `template_dir`; a symlink counts where it points); a file is opened with
O_NONBLOCK and refused by fstat unless it is a regular file, before a byte is read; nothing is read past
`max_template_bytes`; the read has a timeout. Checked on `polyglot-serve judge` as a real process: refused
as INVALID_ARGUMENT naming `template`, its memory stays small, it keeps serving and exits 0 on SIGTERM.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from services.common.errors import InvalidArgument
from services.common.local import LocalServices, free_port
from services.judge.client import JudgeClient
from services.judge.records import GradeItem, Outcome
from tests.fixtures.judge import TEST_API_KEY

MAX_TEMPLATE_BYTES = 4096
PEAK_RSS_LIMIT_KB = 1024 * 1024  # the judge's 1 Gi limit in the report


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


@pytest.fixture
def judge_process(openai_server, tmp_path: Path):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    env = {
        "POLYGLOT_JUDGE_BASE_URL": openai_server.base_url,
        "OPENAI_API_KEY": TEST_API_KEY,
        "POLYGLOT_JUDGE_STORE_URI": (tmp_path / "store").as_uri(),
        # /dev as a root too: even there only regular files are read
        "POLYGLOT_JUDGE_TEMPLATE_ROOTS": json.dumps([str(prompts), "/dev"]),
        "POLYGLOT_JUDGE_MAX_TEMPLATE_BYTES": str(MAX_TEMPLATE_BYTES),
    }
    services = LocalServices(["judge"], ports={"judge": free_port()}, env=env, log_dir=tmp_path, grace=5)
    services.start()
    try:
        services.wait_healthy(timeout=120)
        yield services, prompts
    finally:
        services.stop()


def test_device_fifo_large_and_outside_templates_are_refused_and_sigterm_still_exits(judge_process, tmp_path):
    services, prompts = judge_process
    os.mkfifo(prompts / "blocking.txt")
    with open(prompts / "huge.txt", "wb") as f:  # sparse: 1 GB on paper, nothing on disk
        f.truncate(1 << 30)
    (prompts / "zero.txt").symlink_to("/dev/zero")
    (tmp_path / "elsewhere.txt").write_text("{{prompt}} {{response}}", encoding="utf-8")
    refused = {
        "file:///dev/zero": "is not a regular file",
        (prompts / "zero.txt").as_uri(): "is not a regular file",  # judged where the link points
        (prompts / "blocking.txt").as_uri(): "is not a regular file",
        (prompts / "huge.txt").as_uri(): f"larger than max_template_bytes \\({MAX_TEMPLATE_BYTES}\\)",
        (tmp_path / "elsewhere.txt").as_uri(): "outside the judge's template roots",
        "file:///proc/self/environ": "outside the judge's template roots",
    }
    item = GradeItem("How are you?", "I am fine, thank you.", "en", response_language="en")
    with JudgeClient(services.addresses["judge"], timeout=30, retries=1) as judge:
        for uri, why in refused.items():
            with pytest.raises(InvalidArgument, match=f"^template: .*{why}"):
                judge.grade([item], template=uri)
        (prompts / "rubric.txt").write_text("Rate {{response}} to {{prompt}}: JSON with score.", encoding="utf-8")
        graded = judge.grade([item], template=(prompts / "rubric.txt").as_uri())
        assert graded.records[0].outcome is Outcome.GRADED  # still serving; a confined template works
    assert peak_rss_kb(services.processes["judge"].pid) < PEAK_RSS_LIMIT_KB
    assert services.stop() == {"judge": 0}, (tmp_path / "judge.log").read_text()[-3000:]
