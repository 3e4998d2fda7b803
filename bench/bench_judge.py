"""judge service: throughput against an OpenAI-compatible API with 200 ms latency per request.

    python -m bench judge          # writes bench/results/judge.{json,md}

300 grading items (AlpacaEval instructions and replies from ../shared, English, `response_language`
given so no lid call is involved) go through the judge core with the real `openai` client to the
scripted OpenAI-compatible server of the test fixtures, started as its own process on 127.0.0.1 so its
CPU does not share the judge's interpreter. Every request waits 200 ms there. The baseline is the ideal
wall time 300 × 0.2 s ÷ concurrency (the API's latency, perfectly overlapped); the goal is within 1.2×.
In the same run, a bare `openai` client with only a semaphore measures what the client itself costs,
and a rerun of the batch checks that the cache answers it with zero HTTP requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ITEMS = 300
LATENCY = 0.2
CONCURRENCY = (16, 32)
GOAL = 1.2
ROUNDS = 3


def shared_dir() -> Path:
    return Path(os.environ.get("POLYGLOT_SHARED_DIR", REPO.parent / "shared"))


def alpaca_items(count: int):
    from services.judge.records import GradeItem

    path = shared_dir() / "data" / "alpaca_eval" / "alpaca_eval_gpt4_1106_preview_outputs.json"
    rows = json.loads(path.read_text(encoding="utf-8"))[:count]
    return [
        GradeItem(row["instruction"], row["output"], "en", id=str(i), response_language="en")
        for i, row in enumerate(rows)
    ]


class ServerProcess:
    """`python -m tests.fixtures.judge LATENCY` in its own process; `count()` asks it over loopback."""

    def __init__(self, latency: float):
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'protos'}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fixtures.judge", str(latency)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError(f"scripted server did not start: {self.base_url!r}")

    def count(self) -> int:
        stats_url = self.base_url.removesuffix("/v1") + "/_stats"
        with urllib.request.urlopen(stats_url, timeout=10) as reply:  # loopback only
            return json.loads(reply.read())["count"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


async def bare_client(base_url: str, items, concurrency: int) -> dict:
    """The openai client alone, same requests, same bound: what the judge cannot go below."""
    import openai

    from services.judge.prompts import GRADE, TemplateLibrary

    template = TemplateLibrary().load("", GRADE)
    # The same transport the judge picks (aiohttp when installed), so the difference is the judge's own work.
    client = openai.AsyncOpenAI(
        base_url=base_url, api_key="sk-bench", max_retries=0, timeout=60, http_client=openai.DefaultAioHttpClient()
    )
    semaphore = asyncio.Semaphore(concurrency)

    async def one(item):
        content = template.render(prompt=item.prompt, response=item.response, language="English")
        async with semaphore:
            await client.chat.completions.create(
                model="gpt-3.5-turbo", messages=[{"role": "user", "content": content}], temperature=0, seed=0,
                response_format={"type": "json_object"}, max_tokens=1024,
            )  # fmt: skip

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(item) for item in items))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    await client.close()
    return {"wall_s": round(wall, 3), "cpu_ms_per_request": round(cpu / len(items) * 1000, 2)}


async def judge_run(base_url: str, items, concurrency: int, store_dir: Path, cache: bool = True) -> dict:
    from services.common.store import open_store
    from services.judge.core import Judge
    from services.judge.records import GradeJob, Outcome
    from services.judge.settings import JudgeSettings

    settings = JudgeSettings(
        base_url=base_url, api_key="sk-bench", concurrency=concurrency, store_uri=store_dir.as_uri(), cache=cache
    )
    judge = Judge(settings, open_store(settings.store_uri))
    judge.providers.get(settings.provider)  # one-time client set-up (TLS context, ~0.2 s) is not per-batch work
    start, cpu = time.perf_counter(), time.process_time()
    graded = await judge.grade(GradeJob(items, run_id=f"bench-c{concurrency}"))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    graded_ok = sum(r.outcome is Outcome.GRADED for r in graded.records)
    await judge.aclose()
    rerun_judge = Judge(settings, open_store(settings.store_uri))  # a new process's judge, same store
    rerun_start = time.perf_counter()
    rerun = await rerun_judge.grade(GradeJob(items, run_id=f"bench-c{concurrency}"))
    rerun_wall = time.perf_counter() - rerun_start
    await rerun_judge.aclose()
    return {
        "wall_s": round(wall, 3),
        "cpu_ms_per_request": round(cpu / len(items) * 1000, 2),
        "graded": graded_ok,
        "requests": graded.usage.requests,
        "rerun_wall_s": round(rerun_wall, 3),
        "rerun_requests": rerun.usage.requests,
        "rerun_cached": rerun.usage.cached,
    }


async def client_floor(items) -> dict:
    """The bare client against a server with no latency: how fast this machine can push the batch at all."""
    server = ServerProcess(0.0)
    try:
        runs = [await bare_client(server.base_url, items, max(CONCURRENCY)) for _ in range(ROUNDS)]
    finally:
        server.stop()
    return {
        "concurrency": max(CONCURRENCY),
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "cpu_ms_per_request": statistics.median(r["cpu_ms_per_request"] for r in runs),
    }


async def measure(server: ServerProcess, items) -> list[dict]:
    import openai  # noqa: F401  (import once, outside the timings)

    rows = []
    for concurrency in CONCURRENCY:
        ideal = ITEMS * LATENCY / concurrency
        rounds = []
        for _ in range(ROUNDS):  # bare and judge alternate, so load from other work hits both alike
            bare = await bare_client(server.base_url, items, concurrency)
            with tempfile.TemporaryDirectory(prefix="bench-judge-") as tmp:
                before = server.count()
                run = await judge_run(server.base_url, items, concurrency, Path(tmp))
                http_requests = server.count() - before
            with tempfile.TemporaryDirectory(prefix="bench-judge-") as tmp:
                no_cache = await judge_run(server.base_url, items, concurrency, Path(tmp), cache=False)
            rounds.append({"bare_client": bare, "judge": run, "judge_no_cache": no_cache,
                           "server_requests": http_requests,
                           "rerun_http_requests": http_requests - run["requests"]})  # fmt: skip
        judge_wall = statistics.median(r["judge"]["wall_s"] for r in rounds)
        bare_wall = statistics.median(r["bare_client"]["wall_s"] for r in rounds)
        rows.append(
            {
                "concurrency": concurrency,
                "ideal_s": round(ideal, 3),
                "judge_wall_s": judge_wall,
                "judge_ratio": round(judge_wall / ideal, 3),
                "best_judge_ratio": round(min(r["judge"]["wall_s"] for r in rounds) / ideal, 3),
                "judge_no_cache_wall_s": statistics.median(r["judge_no_cache"]["wall_s"] for r in rounds),
                "bare_wall_s": bare_wall,
                "bare_ratio": round(bare_wall / ideal, 3),
                "judge_over_bare": round(
                    statistics.median(r["judge"]["wall_s"] / r["bare_client"]["wall_s"] for r in rounds), 3
                ),  # fmt: skip
                "judge_cpu_ms_per_request": statistics.median(r["judge"]["cpu_ms_per_request"] for r in rounds),
                "bare_cpu_ms_per_request": statistics.median(r["bare_client"]["cpu_ms_per_request"] for r in rounds),
                "rerun_wall_s": statistics.median(r["judge"]["rerun_wall_s"] for r in rounds),
                "rerun_http_requests": sum(r["rerun_http_requests"] for r in rounds),
                "within_goal": judge_wall / ideal <= GOAL,
                "rounds": rounds,
            }
        )
    return rows


def write(out_dir: Path, summary: dict) -> None:
    (out_dir / "judge.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# judge: 300 items, 200 ms API latency",
        "",
        f"Machine: {summary['machine']}. Load average before / after: {summary['load_average']} / "
        f"{summary['load_average_after']}.",
        f"Medians of {ROUNDS} rounds. Ideal = 300 × 0.2 s ÷ concurrency. `bare` = the openai client alone with a",
        "semaphore, same requests and transport, run alternately with the judge. The judge's runs include its",
        "cache (a miss, then a write to a local store) and usage account; the rerun is a new judge on the same",
        "store answering the whole batch from the cache. `no cache` = the judge with its cache off (no",
        "store writes: the local store fsyncs every object, about 4 ms of CPU each here).",
        "",
        "| concurrency | ideal s | judge s | judge / ideal (best) | no cache s | bare s | bare / ideal "
        "| judge / bare | CPU ms/req judge, bare | rerun s | rerun HTTP requests |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary["runs"]:
        lines.append(
            f"| {row['concurrency']} | {row['ideal_s']} | {row['judge_wall_s']} | **{row['judge_ratio']}** "
            f"({row['best_judge_ratio']}) | {row['judge_no_cache_wall_s']} | {row['bare_wall_s']} "
            f"| {row['bare_ratio']} | {row['judge_over_bare']} "
            f"| {row['judge_cpu_ms_per_request']}, {row['bare_cpu_ms_per_request']} | {row['rerun_wall_s']} "
            f"| {row['rerun_http_requests']} |"
        )
    floor = summary["client_floor_zero_latency"]
    lines += [
        "",
        f"Goal: judge / ideal ≤ {GOAL}.",
        "",
        f"Client floor: the bare openai client pushes the same 300 requests through a server with **no** latency "
        f"in {floor['wall_s']} s at concurrency {floor['concurrency']} ({floor['cpu_ms_per_request']} ms CPU per "
        "request): no client on this machine can finish the batch faster than that, whatever the API's latency.",
        "",
    ]
    (out_dir / "judge.md").write_text("\n".join(lines), encoding="utf-8")


def main(out_dir: Path) -> dict:
    for path in (REPO, REPO / "protos"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    items = alpaca_items(ITEMS)
    load_before = [round(x, 2) for x in os.getloadavg()]
    server = ServerProcess(LATENCY)
    try:
        runs = asyncio.run(measure(server, items))
    finally:
        server.stop()
    floor = asyncio.run(client_floor(items))
    summary = {
        "benchmark": "judge",
        "items": ITEMS,
        "latency_s": LATENCY,
        "goal_ratio": GOAL,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "client_floor_zero_latency": floor,
        "runs": runs,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write(out_dir, summary)
    return summary


if __name__ == "__main__":
    print(json.dumps(main(REPO / "bench" / "results"), indent=2))
