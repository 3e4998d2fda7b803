"""The study end to end: real services (child processes), real Prefect, the real S3 server (SeaweedFS).

A cut-down smoke config (tests/e2e/study_e2e.yaml) on the tiny random Llama: the numbers check the
pipeline, never quality. One uninterrupted run produces the report; a second run in another store is
killed after its first training job, rerun and interrupted (Ctrl-C) mid-evaluation, and rerun again: it
must neither retrain that job nor change a metric.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from flows.config import load_config
from flows.local import materialise_models, prefect_env, service_env
from services.common.catalog import SERVICES
from services.common.local import LocalServices
from services.common.store import open_store
from tests.fixtures.processes import alive

CONFIG = Path(__file__).with_name("study_e2e.yaml")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Study:
    """Services started once; each `run` is a fresh `polyglot study run` process against them."""

    def __init__(self, tmp: Path, s3, bucket: str):
        self.tmp, self.s3, self.bucket = tmp, s3, bucket
        self.ports = {name: _free_port() for name in SERVICES}
        self.overrides = {f"services.{n}": f"127.0.0.1:{p}" for n, p in self.ports.items()}
        self.env = {
            **os.environ,
            **s3.env(),
            **prefect_env(tmp / "state"),
            "PYTHONUNBUFFERED": "1",
        }

    def overrides_for(self, run: str) -> dict[str, str]:
        return {**self.overrides, "artifact_store": f"s3://{self.bucket}/{run}"}

    def store(self, run: str):
        os.environ.update(self.s3.env())
        return open_store(f"s3://{self.bucket}/{run}")

    def start_services(self) -> LocalServices:
        cfg = load_config(CONFIG, self.overrides_for("judge-cache"))
        refs = materialise_models(cfg, self.tmp / "state")
        env = {**self.env, **service_env(cfg, refs, self.tmp / "state")}
        env["POLYGLOT_TRAINER_TORCH_THREADS"] = "1"
        (self.tmp / "logs").mkdir(exist_ok=True)
        return LocalServices(list(SERVICES), ports=self.ports, env=env, log_dir=self.tmp / "logs", grace=5)

    def command(self, run: str) -> list[str]:
        sets = [f"--set={k}={v}" for k, v in self.overrides_for(run).items()]
        return [
            sys.executable, "-m", "flows.cli", "study", "run", str(CONFIG), "--no-services",
            "--state-dir", str(self.tmp / "state"), "--out", str(self.tmp / f"report-{run}"), *sets,
        ]  # fmt: skip

    def run(self, run: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(run), env=self.env, capture_output=True, text=True, timeout=800)

    def start(self, run: str) -> subprocess.Popen:
        log = open(self.tmp / f"flow-{run}.log", "w")
        return subprocess.Popen(
            self.command(run), env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


@pytest.fixture(scope="module")
def study(tmp_path_factory, s3_server):
    tmp = tmp_path_factory.mktemp("study")
    bucket = "e2e-study"
    s3_server.client().make_bucket(bucket)
    study = Study(tmp, s3_server, bucket)
    with study.start_services() as services:
        services.wait_healthy(timeout=300)
        study.services = services
        yield study


def _trainer(study: Study):
    from services.trainer.client import TrainerClient

    return TrainerClient(f"127.0.0.1:{study.ports['trainer']}")


@pytest.fixture(scope="module")
def uninterrupted(study):
    result = study.run("a")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return study.tmp / "report-a"



def _children(pid: int) -> list[int]:
    """Child processes of `pid`, started from any of its threads."""
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def _interrupt_mid_evaluation(study: Study, store, run: str) -> None:
    """Ctrl-C once a shard is stored: exit 130 within 10 s, the resume command printed, no child left."""
    proc = study.start(run)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if any(o.key.endswith(".jsonl") for o in store.list("results/")):
            break
        time.sleep(0.5)
    log = study.tmp / f"flow-{run}.log"
    assert proc.poll() is None, "the run ended before evaluation: " + log.read_text()[-3000:]
    children = _children(proc.pid)  # Prefect's temporary API among them
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    code = proc.wait(timeout=60)
    assert (code, time.monotonic() - started < 10) == (130, True), log.read_text()[-3000:]
    assert f"resume with: polyglot study run {CONFIG} --no-services" in log.read_text()
    assert not [c for c in children if alive(c)]


def test_a_run_starts_its_own_services_around_squatters_and_stops_them(study):
    """Unrelated listeners hold every service's default port. A run with its own services starts them on
    other ports and works with them (the conversations get labelled through its lid); the squatters never
    see a connection. Interrupted then, the run exits 130 within 10 s and no service it started is left."""
    with ExitStack() as stack:
        squatters = []
        for spec in SERVICES.values():
            sock = stack.enter_context(socket.socket())
            with contextlib.suppress(OSError):  # a port someone else already holds is just as busy
                sock.bind(("127.0.0.1", spec.port))
                sock.listen()
                sock.setblocking(False)
                squatters.append(sock)
        cmd = [
            sys.executable, "-m", "flows.cli", "study", "run", str(CONFIG), "--state-dir", str(study.tmp / "state-own"),
            "--out", str(study.tmp / "report-own"), f"--set=artifact_store=s3://{study.bucket}/own",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, env=study.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        output = ""
        while "services up:" not in output:
            line = proc.stderr.readline()
            assert line, "the run ended before its services were up: " + output[-3000:]
            output += line
        up = [proc.stderr.readline().split() for _ in SERVICES]  # "<name> 127.0.0.1:<port> pid <pid>"
        ports = {int(address.rsplit(":", 1)[1]) for _, address, _, _ in up}
        assert not ports & {spec.port for spec in SERVICES.values()}, output
        store = study.store("own")
        deadline = time.monotonic() + 300
        while not list(store.list("datasets/labelled/")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert proc.poll() is None and list(store.list("datasets/labelled/")), "no labelling through its own lid"
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        rest = proc.communicate(timeout=60)[1]
        assert (proc.returncode, time.monotonic() - started < 10) == (130, True), rest[-3000:]
        assert not [pid for *_, pid in up if alive(int(pid))], "a service outlived the run"
        for sock in squatters:
            with pytest.raises(BlockingIOError):  # nothing is waiting to be accepted: nobody connected
                sock.accept()


def test_report_has_every_task_figures_and_tables(uninterrupted):
    html = (uninterrupted / "report.html").read_text()
    md = (uninterrupted / "report.md").read_text()
    for task in ("chat", "xquad", "xcsqa", "xnli"):
        assert task in html and task in md
        assert list((uninterrupted / "figures").glob(f"*{task}*.png")), f"no {task} figure"
        assert list((uninterrupted / "figures").glob(f"*{task}*.svg")), f"no {task} svg figure"
    assert "pipeline check" in html.lower()
    rows = json.loads((uninterrupted / "aggregate.json").read_text())["rows"]
    assert {r["task"] for r in rows} == {"chat", "xquad", "xcsqa", "xnli", "confusion"}
    assert {r["mix"] for r in rows} == {"mono", "multi-2"}


def test_report_has_the_confusion_table_matrix_and_figure_and_line_confusion_of_every_generation_task(
    uninterrupted,
):
    """The confusion task's LPR table and bar figure (one per setting), its matrix of failing lines with a
    heatmap, and the line-confusion summary of the other generation tasks, in both report formats."""
    html = (uninterrupted / "report.html").read_text()
    md = (uninterrupted / "report.md").read_text()
    figures = uninterrupted / "figures"
    for setting in ("monolingual", "crosslingual"):
        assert f'id="tiny-llama-confusion-{setting}-lpr"' in html  # the per-language LPR table
        assert (figures / f"tiny-llama-confusion-{setting}-lpr.svg").is_file()
        assert f'id="tiny-llama-confusion-{setting}-confusion-matrix"' in html
        assert (figures / f"tiny-llama-confusion-{setting}-confusion-matrix.png").is_file()
        assert f"figures/tiny-llama-confusion-{setting}-confusion-matrix.png" in md
    assert "(confusion matrix)" in md and 'id="line-confusion"' in html
    for task in ("chat", "xquad", "xcsqa"):  # each reply's line check, in its samples and summarised
        assert re.search(rf'id="tiny-llama-{task}-(?:[a-z-]+-)?line-confusion"', html), task


def test_every_shard_logs_a_sample_per_item_and_polyglot_samples_lists_them(study, uninterrupted):
    from flows.keys import is_shard_samples, shard_samples
    from flows.steps import read_shard

    store = study.store("a")
    shards = [o.key for o in store.list("results/") if o.key.endswith(".jsonl") and not is_shard_samples(o.key)]
    assert shards
    chat = []
    for key in shards:
        records = read_shard(store, key)
        samples = [json.loads(line) for line in store.get_bytes(shard_samples(key)).decode().splitlines()]
        assert [(s["item_id"], s["outcome"]) for s in samples] == [(r.item_id, r.outcome) for r in records], key
        chat += [r for r in records if r.task == "chat"]
    outcome = chat[0].outcome
    sets = [f"--set={k}={v}" for k, v in study.overrides_for("a").items()]
    command = [sys.executable, "-m", "flows.cli", "samples", str(CONFIG), "--task", "chat", "--outcome", outcome]
    listed = subprocess.run([*command, "--json", *sets], env=study.env, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-3000:]
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(lines) == sum(r.outcome == outcome for r in chat)
    assert all(s["task"] == "chat" and s["outcome"] == outcome and "reply" in s for s in lines)

    md = (uninterrupted / "report.md").read_text()
    links = set(re.findall(r"\]\((samples/[^)]+\.jsonl)\)", md))
    assert links and all((uninterrupted / link).is_file() for link in links)


def test_killed_study_resumes_without_retraining_and_matches(study, uninterrupted):
    store = study.store("b")
    proc = study.start("b")
    deadline = time.monotonic() + 600
    first = []
    while time.monotonic() < deadline and proc.poll() is None:
        first = [o.key for o in store.list("models/") if o.key.endswith("/model.json")]
        if first:
            break
        time.sleep(0.5)
    assert first, "no training job finished before the deadline: " + (study.tmp / "flow-b.log").read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    trainer = _trainer(study)
    model = store.get_json(first[0])
    before = trainer.get(model["job_id"])
    _interrupt_mid_evaluation(study, store, "b")

    rerun = study.run("b")
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-5000:]

    after = trainer.get(model["job_id"])
    assert after.attempts == before.attempts == 1, "the finished job was run again"
    assert after.finished_at == before.finished_at
    jobs = trainer.list(labels={"study": "e2e"})
    keys = [j.idempotency_key for j in jobs]
    assert len(keys) == len(set(keys)), f"duplicate jobs: {keys}"
    store_b_jobs = [j for j in jobs if j.spec.output_uri.startswith(f"s3://{study.bucket}/b/")]
    assert len(store_b_jobs) == 2, [j.spec.output_uri for j in jobs]  # mono and multi-2, each once

    def means(report: Path):
        rows = json.loads((report / "aggregate.json").read_text())["rows"]
        return {(r["mix"], r["task"], r["variant"], r["language"], r["metric"]): r["mean"] for r in rows}

    assert means(study.tmp / "report-b") == means(uninterrupted)


def test_every_chat_reply_that_passed_the_language_gate_has_a_helpfulness_grade(study, uninterrupted):
    """The generator-as-judge answers under the verdict's JSON Schema, so the tiny random model grades every
    reply the gate lets through: no UNPARSABLE or ERROR outcome, a score of 1..6 on each graded item."""
    from flows.keys import is_shard_samples
    from flows.results import Outcome
    from flows.steps import read_shard

    store = study.store("a")
    shards = [o.key for o in store.list("results/") if o.key.endswith(".jsonl") and not is_shard_samples(o.key)]
    chat = [r for key in shards for r in read_shard(store, key) if r.task == "chat"]
    assert chat
    assert {r.outcome for r in chat} <= {Outcome.OK, Outcome.LANGUAGE_MISMATCH}, {r.outcome for r in chat}
    passed = [r for r in chat if r.outcome is Outcome.OK]
    assert passed, "no reply passed the language gate: the judge was never asked"
    assert all(1 <= r.metrics["helpfulness"] <= 6 for r in passed)


def test_a_generator_serving_another_base_model_stops_the_run_at_preflight(study, tmp_path):
    """The running generator serves the e2e study's tiny model; a config naming another model is stopped
    before any work, with exit 2 and both models named."""
    other = tmp_path / "llama-2-7b"
    other.mkdir()
    result = subprocess.run(
        [*study.command("mismatch"), f"--set=base_models=[{{name: tiny-llama, model: '{other}'}}]"],
        env=study.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    served = str(study.tmp / "state" / "models")  # where the study's tiny model was materialised
    lines = [line for line in result.stderr.splitlines() if "tiny-llama" in line and str(other) in line]
    assert lines and served in lines[0], result.stderr[-3000:]
    assert not list(study.store("mismatch").list("")), "preflight must stop the run before any work"


def test_a_failing_judge_fails_the_study_naming_the_share_and_a_tolerated_share_shows_in_the_report(
    study, uninterrupted, judge_settings_factory
):
    """An OpenAI-compatible judge endpoint that fails one in three of the replies it grades, on every attempt:
    the study exits 1 naming the error share (results kept); allowed a larger share, the rerun reuses the
    shards and the report shows the errors beside the means."""
    from tests.fixtures.judge import Error, ScriptedOpenAIServer, grade_reply, running_judge

    source, target = study.store("a"), study.store("flaky")
    for obj in source.list(""):  # the trained models and data: only the judging is new
        if not obj.key.startswith(("results/", "aggregates/", "reports/")):
            target.put_bytes(obj.key, source.get_bytes(obj.key))
    seen: dict[str, int] = {}

    def flaky(request):
        number = seen.setdefault(request.text, len(seen))  # the same reply fails again on a retry
        return Error(422) if number % 3 == 0 else grade_reply()

    endpoint = ScriptedOpenAIServer(default=flaky)
    with endpoint, running_judge(judge_settings_factory(endpoint.base_url, max_attempts=2, cache=False)) as judge:
        judged = [f"--set=services.judge={judge}", "--set=judge.provider=openai", "--set=judge.model=gpt-3.5-turbo"]
        failed = subprocess.run(
            [*study.command("flaky"), *judged, "--tasks", "chat"], env=study.env, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        assert failed.returncode == 1, failed.stderr[-3000:]
        assert "chat:" in failed.stderr and "ended in error" in failed.stderr and "%" in failed.stderr
        assert seen, "no reply passed the language gate: nothing reached the judge endpoint"
        tolerated = subprocess.run(
            [*study.command("flaky"), *judged, "--tasks", "chat", "--set=evaluation.max_error_share=0.9"],
            env=study.env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert tolerated.returncode == 0, tolerated.stderr[-3000:]
    report = (study.tmp / "report-flaky" / "report.md").read_text()
    assert re.search(r"n=\d+ · \d+ error[^\]]*\]\(samples/", report)  # "n=4 · 1 error · ...", linked to the samples
