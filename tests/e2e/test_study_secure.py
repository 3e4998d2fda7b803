"""The study with authentication on: mutual TLS and bearer tokens, certificates made by the test.

`polyglot study run` starts the four services with a server certificate, a client CA and a callers
directory (tokens of `study` and `judge`); the run itself presents the study's certificate and token, and
the judge its own (POLYGLOT_JUDGE_TOKEN, ...) on its calls to the generator. The services' call logs
then name who called what: flows -> every service as `study`, judge -> generator as `judge`. (The flows
give the judge each reply's language, so its calls to lid are checked in tests/reliability/test_row02_auth.py.)
Cut down to one mix, one seed and the chat task to stay cheap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from flows.local import prefect_env
from services.common.catalog import SERVICES
from tests.fixtures.tls import Pki, token_dir

CONFIG = Path(__file__).with_name("study_e2e.yaml")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _calls(log_dir: Path) -> dict[str, dict[str, set[str]]]:
    """service -> method -> callers, from each service's JSON call log; also checks it served TLS with auth."""
    calls: dict[str, dict[str, set[str]]] = {}
    for name in SERVICES:
        records = []
        for line in (log_dir / f"{name}.log").read_text().splitlines():
            start = line.find("{")
            if start >= 0 and '"event"' in line:
                try:
                    records.append(json.loads(line[start:]))
                except json.JSONDecodeError:
                    continue
        serving = [r for r in records if r.get("event") == "serving"]
        assert serving and serving[0]["tls"] and serving[0]["auth"] == "tokens + client certificates", name
        methods: dict[str, set[str]] = defaultdict(set)
        for r in records:
            if r.get("event") == "rpc":
                methods[r["method"]].add(r.get("caller", "-"))
        calls[name] = methods
    return calls


def test_the_study_runs_with_mutual_tls_and_tokens(tmp_path, s3_server):
    bucket = "e2e-secure"
    s3_server.client().make_bucket(bucket)
    pki = Pki(tmp_path / "pki")
    server_cert, server_key = pki.issue("server", server=True)
    study_cert, study_key = pki.issue("study")
    judge_cert, judge_key = pki.issue("judge")
    tokens = token_dir(tmp_path / "callers", "study", "judge")
    state = tmp_path / "state"
    env = {
        **os.environ, **s3_server.env(), **prefect_env(state), "PYTHONUNBUFFERED": "1",
        # The services: TLS, callers' certificates checked against the CA, tokens per identity.
        "POLYGLOT_TLS_CERT": str(server_cert), "POLYGLOT_TLS_KEY": str(server_key),
        "POLYGLOT_TLS_CLIENT_CA": str(pki.ca), "POLYGLOT_CALLERS": str(tmp_path / "callers"),
        # Every client checks the servers against the CA; the run itself is the study ...
        "POLYGLOT_TLS_CA": str(pki.ca), "POLYGLOT_TLS_CLIENT_CERT": str(study_cert),
        "POLYGLOT_TLS_CLIENT_KEY": str(study_key), "POLYGLOT_TOKEN": tokens["study"],
        # ... and the judge, on its calls to lid and the generator, is the judge.
        "POLYGLOT_JUDGE_TLS_CLIENT_CERT": str(judge_cert), "POLYGLOT_JUDGE_TLS_CLIENT_KEY": str(judge_key),
        "POLYGLOT_JUDGE_TOKEN": tokens["judge"], "POLYGLOT_TRAINER_TORCH_THREADS": "1",
    }  # fmt: skip
    command = [
        sys.executable, "-m", "flows.cli", "study", "run", str(CONFIG), "--state-dir", str(state),
        "--out", str(tmp_path / "report"), f"--set=artifact_store=s3://{bucket}/run", "--tasks", "chat",
        "--set=seeds=[0]", "--set=data.mixes.build=[mono]",
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert (tmp_path / "report" / "report.html").is_file()

    calls = _calls(state / "logs")
    assert calls["trainer"]["SubmitJob"] == {"study"}, calls
    assert "study" in calls["lid"]["CheckLanguage"], calls  # the flows label replies themselves
    assert calls["generator"]["Generate"] == {"study", "judge"}, calls  # the judge grades through the generator
    assert calls["judge"]["Grade"] | calls["judge"].get("GradeStream", set()) == {"study"}, calls
    assert "-" not in {c for methods in calls.values() for callers in methods.values() for c in callers}, calls
