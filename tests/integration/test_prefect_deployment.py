"""The study as a Prefect deployment, the way deploy/k8s/README.md registers and runs it, on loopback.

A real Prefect server (a child process with its own PREFECT_HOME), `prefect deploy` of the `local`
deployment from deploy/prefect/prefect.yaml run in the repo root, a process worker, and one flow run of the
real study flow against the four services on the tiny random Llama, with a local artifact store. The study
is tests/e2e/study_e2e.yaml cut to the least that still goes data → train → evaluate → report: one mix,
XNLI in one language, 2 items, 2 training steps. The run must complete and leave the report artifact.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flows.config import load_config
from flows.local import materialise_models, service_env
from services.common.catalog import SERVICES
from services.common.local import LocalServices, free_port

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests" / "e2e" / "study_e2e.yaml"
PREFECT = [sys.executable, "-m", "prefect"]
CUT = {
    "data.mixes.build": ["mono"],
    "training.max_steps": 2,
    "evaluation.tasks.xnli.languages": ["en"],
    "evaluation.tasks.xnli.sample_size": 2,
    "seeds": [0],
}
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _prefect(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [*PREFECT, "--no-prompt", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


def _wait_for_api(url: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"no Prefect API at {url} after {timeout} s: " + log.read_text()[-3000:])


@pytest.fixture
def prefect_env(tmp_path):
    """A Prefect server on a free loopback port, its state in tmp: the environment of its CLI calls."""
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
        "PWD": str(REPO),  # as a shell in the repo root has it: the `local` deployment's working_dir
    }
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield env  # not waited for here: the test starts its services meanwhile
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_the_local_deployment_runs_the_study_and_links_its_report(prefect_env, tmp_path):
    env = prefect_env
    ports = {name: free_port() for name in SERVICES}
    overrides = {f"services.{n}": f"127.0.0.1:{p}" for n, p in ports.items()}
    overrides |= {"artifact_store": f"file://{tmp_path / 'store'}", **CUT}
    cfg = load_config(CONFIG, overrides, tasks=["xnli"])
    refs = materialise_models(cfg, tmp_path / "state")
    services = LocalServices(
        list(SERVICES), ports=ports, env={**env, **service_env(cfg, refs, tmp_path / "state")}, log_dir=tmp_path
    )
    with services:  # they start while the server does
        _wait_for_api(env["PREFECT_API_URL"], tmp_path / "server.log")
        _prefect(env, "work-pool", "create", "polyglot-local", "--type", "process")
        _prefect(env, "deploy", "--prefect-file", "deploy/prefect/prefect.yaml", "--name", "local")
        services.wait_healthy(timeout=120)
        parameters = {
            "config_path": str(CONFIG),
            "base_models": refs,
            "out_dir": str(tmp_path / "report"),
            "overrides": overrides,
            "tasks": ["xnli"],
        }
        created = _prefect(env, "deployment", "run", "study/local", "--params", json.dumps(parameters))
        (run_id,) = re.findall(r"UUID: (\S+)", created)
        # --run-once: the worker picks up the run just created, executes it and exits when it is over.
        _prefect(env, "worker", "start", "--pool", "polyglot-local", "--run-once", timeout=240)
    run, deployment, artifacts = _read(env["PREFECT_API_URL"], run_id)
    assert run.state.is_completed(), f"{run.state}: {run.state.message}"
    # Nothing in the deployment names this checkout but what `prefect deploy` resolved from its $PWD.
    assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": "."}}]
    assert deployment.job_variables == {"working_dir": str(REPO)}
    (artifact,) = artifacts
    assert (artifact.key, artifact.type) == ("report-e2e", "markdown")
    report = tmp_path / "report"
    for path in (report / "report.html", report / "report.md"):
        assert path.exists() and f"`{path}`" in artifact.data, artifact.data
    assert f"`file://{tmp_path / 'store'}/reports/e2e/" in artifact.data, artifact.data
    assert "xnli" in (report / "report.md").read_text()


def _read(api: str, run_id: str):
    """The flow run, its deployment and the artifacts on the run, through Prefect's client."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read():
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
            deployment = await client.read_deployment(run.deployment_id)
            flt = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
            return run, deployment, await client.read_artifacts(artifact_filter=flt)

    with temporary_settings({PREFECT_API_URL: api}):
        return asyncio.run(read())
