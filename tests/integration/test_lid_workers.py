"""`polyglot-serve lid --workers 2`: a real serving process and its forked child answer as one process."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from services.lid.client import LidClient
from services.lid.core import LanguageIdentifier
from tests.fixtures.lid import serve, stop, wait_until_serving
from tests.fixtures.processes import alive, wait_until

TEXTS = [
    "Das Wetter ist heute sehr schön, wir gehen in den Park und danach essen wir ein Eis.",
    "The weather is lovely today, so we are going to the park and then for an ice cream.",
    "今天天气很好，我们去公园散步，然后去吃冰淇淋。",
    "Сегодня прекрасная погода,\nмы идём в парк, а потом едим мороженое.",
]


def children_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture(scope="module")
def words(shared_dir: Path) -> Path:
    return shared_dir / "data" / "lcb" / "words"


@pytest.mark.slow
def test_two_workers_answer_as_one_process_and_survive_a_lost_child(words):
    local = LanguageIdentifier(word_list=words)
    texts: list = [TEXTS[i % len(TEXTS)] * 4 for i in range(200)]  # ~50 K characters: shared by both processes
    texts[7], texts[190] = "", b"\xff bad"
    items = [(t, ("de", "en", "zh", "ru")[i % 4]) for i, t in enumerate(texts)]
    proc, address = serve("--workers", "2", "--word-list", str(words))
    try:
        wait_until_serving(proc, address)
        (child,) = children_of(proc.pid)
        with LidClient(address, timeout=60) as client:
            assert client.model_info().workers == 2
            for round_ in range(2):
                identified = client.identify(texts, k=2)
                assert [(r.index, r.field, [p.raw_label for p in r.predictions]) for r in identified] == [
                    (r.index, r.field, [p.raw_label for p in r.predictions]) for r in local.identify(texts, k=2)
                ]
                assert [r.field for r in identified if r.error] == ["texts[7]", "texts[190]"]
                remote = client.check_language(items, metric="lcb")
                assert [(c.index, c.line_pass, c.word_pass, c.lines, c.field) for c in remote] == [
                    (c.index, c.line_pass, c.word_pass, c.lines, c.field)
                    for c in local.check_language(items, metric="lcb")
                ]
                if round_ == 0:  # the second round runs after the child was killed (the OOM killer's way)
                    os.kill(child, signal.SIGKILL)
                    wait_until(lambda: not alive(child), 30, "the worker to die")
            assert client.model_info().workers == 1  # what is left: the serving process
        assert proc.poll() is None
    finally:
        assert stop(proc) == 0


@pytest.mark.slow
def test_the_child_does_not_outlive_a_killed_server():
    proc, address = serve("--workers", "3")
    wait_until_serving(proc, address)
    children = children_of(proc.pid)
    assert len(children) == 2
    proc.kill()
    proc.communicate(timeout=30)
    wait_until(lambda: not any(alive(c) for c in children), 30, "the workers to exit after their parent")
