"""Study tasks retry transient service failures (UNAVAILABLE, DEADLINE_EXCEEDED) and nothing else, on real Prefect."""

from __future__ import annotations

import os

import pytest

from services.common.errors import InvalidArgument, Unavailable

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect(tmp_path_factory):
    from flows.local import prefect_env

    saved = dict(os.environ)
    os.environ.update(prefect_env(tmp_path_factory.mktemp("prefect")))
    yield
    os.environ.clear()
    os.environ.update(saved)


def _run(error: Exception, failures: int) -> int:
    from prefect import flow, task

    from flows.study import RETRY

    calls = []

    @task(**{**RETRY, "retry_delay_seconds": 0})
    def flaky() -> int:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return len(calls)

    @flow
    def run_it():
        return flaky(return_state=True)

    run_it(return_state=True)  # a task that finally fails fails the flow: count attempts, not raise
    return len(calls)


def test_unavailable_is_retried_until_it_passes(prefect):
    assert _run(Unavailable("generator restarting"), failures=2) == 3


def test_invalid_argument_is_not_retried(prefect):
    assert _run(InvalidArgument("bad", field="prompts"), failures=5) == 1
