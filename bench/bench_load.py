"""Load (issue 19): 64 concurrent generator clients plus 1,000 idle connections for 30 s against a real
`polyglot-serve generator` process: errors, health p99, and the server's RSS over time.

The server is its own process (tiny Llama, CPU, `hf`, one torch thread, the runtime's default connection
limits). This process is the load: 64 `AsyncGeneratorClient`s (one channel each) on one event loop, each
generating one short completion (max_tokens 8) after another; the idle attacker of
`bench/bench_idle_connections.py` (1,000 connections, half silent TCP, half an HTTP/2 preface, reopened
whenever the server closes one); a health probe that opens a fresh channel ten times a second (as kubelet
does); and a sampler reading the server's VmRSS every 0.5 s. Before the load, the same probe alone gives the
baseline p99, in the same run. Targets: 0 errors, loaded health p99 < 0.5 s, RSS after warm-up within 10 %
of its first loaded sample.

    .venv/bin/python -m bench load
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.bench_generator import PROMPTS, _shared_dir
from bench.bench_idle_connections import IDLE, Attacker, _probe

REPO = Path(__file__).resolve().parents[1]
CLIENTS = 64
HOLD_S = 30.0
WARM_UP_S = 5.0  # of the loaded period, before RSS counts: allocator pools and batches reach their size
MAX_TOKENS = 8
RSS_EVERY_S = 0.5


def _serve(model: Path, port: int, log) -> subprocess.Popen:
    command = [sys.executable, "-m", "services.common.serve", "generator", "--model", str(model), "--device", "cpu",
               "--dtype", "float32", "--threads", "1", "--port", str(port), "--metrics-port", "0",
               "--log-level", "WARNING"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Clients:
    """`CLIENTS` generator clients, each calling Generate in a loop until stopped; counts calls and errors."""

    def __init__(self, address: str):
        self.address, self.calls, self.errors, self.first_errors = address, 0, 0, []
        self.stop = threading.Event()

    async def _one(self, i: int) -> None:
        from services.generator.client import AsyncGeneratorClient

        client = AsyncGeneratorClient(self.address, timeout=120)
        try:
            while not self.stop.is_set():
                prompt = PROMPTS[(i + self.calls) % len(PROMPTS)]
                try:
                    (result,) = await client.generate_all([prompt], preset="chat", seed=i, max_tokens=MAX_TOKENS)
                    failed = result.error
                except Exception as exc:  # every kind of failure is one error of the run
                    failed = exc
                self.calls += 1
                if failed is not None:
                    self.errors += 1
                    if len(self.first_errors) < 5:
                        self.first_errors.append(f"{type(failed).__name__}: {failed}"[:300])
        finally:
            await client.close()

    def run(self) -> None:
        async def everyone() -> None:
            await asyncio.gather(*(self._one(i) for i in range(CLIENTS)))

        asyncio.run(everyone())


def _p99(latencies: list[float]) -> float:
    return float(np.percentile(latencies, 99))


def main(out_dir: Path) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from services.common.client import wait_for_health
    from services.common.local import free_port
    from services.common.tiny_model import build_tiny_llama

    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    model = build_tiny_llama(work / "tiny", _shared_dir() / "models" / "tokenizers" / "llama2", seed=0)
    port = free_port()
    address = f"127.0.0.1:{port}"
    rss: list[tuple[float, float]] = []
    with open(work / "server.log", "wb") as log:
        server = _serve(model, port, log)
        try:
            wait_for_health(address, timeout=300)
            baseline = _probe(address, 10)
            clients, attacker = Clients(address), Attacker(port)
            threads = [threading.Thread(target=t.run, daemon=True) for t in (clients, attacker)]
            sampling = threading.Event()

            def sample() -> None:
                start = time.monotonic()
                while not sampling.wait(RSS_EVERY_S):
                    rss.append((round(time.monotonic() - start, 2), round(_rss_mib(server.pid), 1)))

            threads.append(threading.Thread(target=sample, daemon=True))
            rss_before = _rss_mib(server.pid)
            for thread in threads:
                thread.start()
            loaded = _probe(address, HOLD_S)
            clients.stop.set()
            attacker.close()
            sampling.set()
            for thread in threads:
                thread.join(timeout=150)
            alive = server.poll() is None
        finally:
            server.terminate()
            server.wait(timeout=60)

    counted = [mib for at, mib in rss if at >= WARM_UP_S]
    rss_spread = (max(counted) - min(counted)) / counted[0]
    # The allocator hands pages back and takes them again (+-5 %); a leak shows as a slope, not a spread.
    slope = np.polyfit([at for at, _ in rss if at >= WARM_UP_S], counted, 1)[0] * 60
    failed_probes = sum(latency >= 5.0 for latency in loaded)
    summary = {
        "benchmark": "load",
        "setup": {
            "server": "polyglot-serve generator (own process), tiny random Llama, CPU, hf, torch threads 1, "
            "default connection limits",
            "generator_clients": CLIENTS,
            "generation": f"one prompt per call, chat preset, max_tokens {MAX_TOKENS}",
            "idle_connections": IDLE,
            "hold_s": HOLD_S,
            "probe": "fresh channel + Health.Check every 0.1 s, 5 s timeout (a failure counts as 5 s)",
            "cpus": os.cpu_count(),
        },
        "generate_calls": clients.calls,
        "generate_errors": clients.errors,
        "first_errors": clients.first_errors,
        "failed_probes": failed_probes,
        "errors": clients.errors + failed_probes,
        "server_alive_after": alive,
        "probes": len(loaded),
        "baseline_health_p99_s": round(_p99(baseline), 4),
        "loaded_health_p99_s": round(_p99(loaded), 4),
        "health_p99_ratio": round(_p99(loaded) / _p99(baseline), 2),
        "idle_closed_by_server": attacker.closed,
        "rss_before_load_mib": round(rss_before, 1),
        "rss_after_warm_up_mib": counted[0],
        "rss_max_mib": max(counted),
        "rss_end_mib": counted[-1],
        "rss_spread_after_warm_up": round(rss_spread, 4),
        "rss_trend_mib_per_min": round(float(slope), 2),
        "rss_samples": rss,
        "targets": "errors 0, loaded health p99 < 0.5 s, RSS spread after warm-up <= 0.10",
        "met": clients.errors + failed_probes == 0 and _p99(loaded) < 0.5 and rss_spread <= 0.10 and alive,
    }
    (out_dir / "load.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"- {key}: {value}" for key, value in summary.items() if key not in ("setup", "rss_samples")]
    (out_dir / "load.md").write_text(
        "# Load: 64 generator clients + 1,000 idle connections for 30 s (issue 19)\n\n"
        + "\n".join(f"- {key}: {value}" for key, value in summary["setup"].items())
        + "\n\n## Results\n\n"
        + "\n".join(lines)
        + "\n\nRSS sampled every 0.5 s (json: `rss_samples`, seconds into the load, MiB). Measured on a shared "
        "2-core machine while other work ran; rerun with `python -m bench load`.\n"
    )
    return {key: value for key, value in summary.items() if key != "rss_samples"}
