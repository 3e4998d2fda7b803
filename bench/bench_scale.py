"""Scale-out of the evaluate phase: 1 vs 2 generator replicas behind one `dns://` name, CPU, tiny Llama.

Two `polyglot-serve generator` processes (one torch thread each, OMP_NUM_THREADS=1) listen on one port at
127.0.0.1 and 127.0.0.2, the way a headless Service's pods do; a DNS server on loopback (tests/fixtures/
dns.py) answers for `generator.bench` with one address or both. A cut-down evaluate phase runs the study's
own code: shards of 4 adapters × 6 chat-style shards of 6 prompts each (32 new tokens, the chat preset),
taken in turns (`flows.study.in_turns`), each through `steps._generate` on `Clients.routed_by(adapter)`,
on a thread pool as wide as the calls in flight. Calls in flight scale with the replicas (2 per
replica: `concurrency.generator` 2, then 4), as a deployment sets them.

Reported, per round (the two sides alternate which goes first, the headline is the median of per-round
ratios): completions/s with 1 and 2 replicas and their ratio (goal >= 1.7), the Generate calls each replica
served (its own Prometheus counter) and their spread |a − b| / (a + b) (goal <= 0.10), and the adapters each
replica loaded (the routing's record and the replica's ListModels).

    .venv/bin/python -m bench scale     # writes bench/results/scale.json and .md (~3 min on a quiet 2-core machine)

On a machine other jobs load, both replicas compete with them for the cores: rerun it on a quiet one.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.bench_lid import _cpu_seconds, shared_dir  # CPU of a process and its children; ../shared
from services.common.local import free_port

REPO = Path(__file__).resolve().parents[1]
ADAPTERS = 4
SHARDS_PER_ADAPTER = 6
ITEMS_PER_SHARD = 6
MAX_TOKENS = 32
IN_FLIGHT_PER_REPLICA = 2
ROUNDS = 3
HOSTS = ("127.0.0.1", "127.0.0.2")
NAME = "generator.bench"


def _instructions(n: int) -> list[str]:
    """Real chat instructions (AlpacaEval's, from ../shared) as Guanaco-format prompts."""
    rows = json.loads(
        (shared_dir() / "data" / "alpaca_eval" / "alpaca_eval_gpt4_1106_preview_outputs.json").read_text()
    )
    return [f"### Human: {row['instruction'].strip()[:400]}\n### Assistant:" for row in rows[:n]]


@contextmanager
def _replica(host: str, port: int, metrics_port: int, model: Path, work: Path):
    """One generator process, one torch thread, serving at host:port; stopped (SIGTERM) afterwards."""
    from services.common.client import wait_for_health

    cmd = [
        sys.executable, "-m", "services.common.serve", "generator", "--host", host, "--port", str(port),
        "--metrics-port", str(metrics_port), "--model", str(model), "--device", "cpu", "--dtype", "float32",
        "--threads", "1", "--max-loaded-adapters", str(ADAPTERS), "--adapter-cache-dir", str(work / f"cache-{host}"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "POLYGLOT_FILE_ROOTS": json.dumps([str(work)])}  # the adapters live in the bench's store  # fmt: skip
    with open(work / f"generator-{host}.log", "ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_for_health(f"{host}:{port}", timeout=300)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _generate_calls(host: str, metrics_port: int) -> int:
    """Generate calls the replica answered, from its own Prometheus counter."""
    text = urllib.request.urlopen(f"http://{host}:{metrics_port}/metrics", timeout=10).read().decode()
    pattern = re.compile(r'^polyglot_rpc_calls_total\{[^}]*method="Generate"[^}]*\} ([0-9.e+]+)$', re.M)
    return int(sum(float(v) for v in pattern.findall(text)))


def _evaluate_phase(cfg, shards, workers: int) -> dict:
    """The shards through the study's generation step, `workers` at a time; wall time and what was routed."""
    from flows import steps
    from flows.clients import Clients
    from flows.study import in_turns

    clients = Clients.connect(cfg)
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            done = pool.map(
                lambda s: steps._generate(cfg, clients.routed_by(s.model.adapter_uri).generator, s.evalset, s),
                [shard for _, shard in in_turns(shards)],
            )
            completions = [c for shard_completions in done for c in shard_completions]
        wall = time.perf_counter() - started
        routed = clients.generators.router.routed() if clients.generators else {}
        loaded = {
            replica: sorted(m.uri for m in client.list_models().models if m.kind == "adapter")
            for replica, client in (clients.generators.clients().items() if clients.generators else [])
            if replica in routed
        }
    finally:
        clients.close()
    return {
        "wall_s": round(wall, 3),
        "completions": len(completions),
        "errors": sum(c.error is not None for c in completions),
        "new_tokens": sum(c.completion_tokens for c in completions),
        "routed": routed,
        "loaded_adapters": loaded,
    }


def main(out_dir: Path) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from flows import steps
    from flows.config import load_config
    from flows.evals import EvalItem
    from services.common.store import open_store
    from services.common.tiny_model import build_tiny_llama
    from tests.fixtures.dns import dns_server
    from tests.fixtures.generator import make_tiny_lora

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    model = build_tiny_llama(work / "tiny", shared_dir() / "models" / "tokenizers" / "llama2", seed=0)
    adapters = []
    for i in range(ADAPTERS):
        uri = (work / "store" / "models" / f"mix-{i}" / "adapter").as_uri()
        open_store(uri).put_dir("", make_tiny_lora(model, work / f"lora-{i}", seed=i + 1))
        adapters.append(uri)
    prompts = _instructions(ITEMS_PER_SHARD * SHARDS_PER_ADAPTER)
    shards = []
    for i, uri in enumerate(adapters):
        tuned = steps.TunedModel("tiny-llama", f"mix-{i}", f"models/tiny-llama/mix-{i}/bench", uri, job_id="")
        for s in range(SHARDS_PER_ADAPTER):
            chunk = prompts[s * ITEMS_PER_SHARD : (s + 1) * ITEMS_PER_SHARD]
            items = [EvalItem(id=f"{s}-{n}", task="chat", language="en", prompt=p) for n, p in enumerate(chunk)]
            shards.append(steps.Shard(tuned, "chat", "en", s, items))  # items stand in for the built eval set
    port = free_port()
    metrics = {host: free_port() for host in HOSTS}

    def config(dns_address: str, replicas: int):
        in_flight = IN_FLIGHT_PER_REPLICA * replicas
        overrides = {
            "services.generator": f"dns://{dns_address}/{NAME}:{port}",
            "concurrency.generator": in_flight,
            "concurrency.task_runner_workers": in_flight,
            "evaluation.tasks.chat.sampling": {"preset": "chat", "max_tokens": MAX_TOKENS},
        }
        return load_config(REPO / "configs" / "smoke.yaml", overrides, tasks=["chat"]), in_flight

    rounds = []
    with ExitStack() as stack:
        pids = {host: stack.enter_context(_replica(host, port, metrics[host], model, work)).pid for host in HOSTS}
        dns = stack.enter_context(dns_server({NAME: list(HOSTS)}))
        # Warm-up: every replica runs the base model once. Adapters load as the routing sends them (the
        # first round pays for the loads; ListModels then shows where each went).
        cfg, _ = config(dns.address, 2)
        base = steps.TunedModel("tiny-llama", "base", "models/tiny-llama/base/bench", adapter_uri="", job_id="")
        warm = [steps.Shard(base, "chat", "en", n, shards[0].evalset[:2]) for n in range(2)]
        for host in HOSTS:
            dns.records[NAME] = [host]
            _evaluate_phase(cfg, warm, 2)
        for r in range(ROUNDS):
            result = {}
            for replicas in (1, 2) if r % 2 == 0 else (2, 1):
                dns.records[NAME] = list(HOSTS[:replicas])
                cfg, in_flight = config(dns.address, replicas)
                before = {host: _generate_calls(host, metrics[host]) for host in HOSTS}
                cpu = {host: _cpu_seconds(pid) for host, pid in pids.items()}
                client_cpu = time.process_time()
                run = _evaluate_phase(cfg, shards, in_flight)
                run["client_cores"] = round((time.process_time() - client_cpu) / run["wall_s"], 2)
                run["served_generate_calls"] = {h: _generate_calls(h, metrics[h]) - before[h] for h in HOSTS}
                # Cores the replicas got: on a loaded machine two replicas may share less than two.
                replica_cpu_s = sum(_cpu_seconds(p) - cpu[h] for h, p in pids.items())
                run["replica_cores"] = round(replica_cpu_s / run["wall_s"], 2)
                run["completions_per_replica_cpu_s"] = round(run["completions"] / replica_cpu_s, 2)
                run["completions_per_s"] = round(run["completions"] / run["wall_s"], 2)
                result[f"{replicas}_replica{'s' if replicas > 1 else ''}"] = run
            rounds.append(result)

    one, two = "1_replica", "2_replicas"
    ratios = [r[one]["wall_s"] / r[two]["wall_s"] for r in rounds]
    served = [list(r[two]["served_generate_calls"].values()) for r in rounds]
    spreads = [abs(a - b) / (a + b) for a, b in served]
    summary = {
        "benchmark": "scale",
        "setup": {
            "model": "tiny random Llama (hidden 128, 2 layers, Llama 2 tokenizer), fp32, CPU",
            "replicas": "polyglot-serve generator processes, --threads 1, OMP_NUM_THREADS=1, at 127.0.0.1 and "
            f"127.0.0.2 on one port behind dns://<loopback DNS>/{NAME}",
            "workload": f"{ADAPTERS} adapters x {SHARDS_PER_ADAPTER} shards x {ITEMS_PER_SHARD} AlpacaEval prompts, "
            f"chat preset, max_tokens {MAX_TOKENS}, seed = shard; steps._generate via Clients.routed_by(adapter)",
            "in_flight": f"{IN_FLIGHT_PER_REPLICA} generator calls per replica (concurrency.generator and the "
            "thread pool: 2 for 1 replica, 4 for 2)",
            "rounds": ROUNDS,
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "throughput": {
            "one_replica_completions_per_s": round(statistics.median(r[one]["completions_per_s"] for r in rounds), 2),
            "two_replicas_completions_per_s": round(statistics.median(r[two]["completions_per_s"] for r in rounds), 2),
            "ratio": round(statistics.median(ratios), 3),
            "ratios_per_round": [round(x, 3) for x in ratios],
            "goal": ">= 1.7",
            "replica_cores": {side: statistics.median(r[side]["replica_cores"] for r in rounds) for side in (one, two)},
        },
        # What the replicas did per CPU-second they got: the same with 2 replicas as with 1 means routing
        # added no work, and 2 × its ratio is what two free cores would give (a projection, not a measurement).
        "cpu_normalised": {
            "one_replica_completions_per_cpu_s": statistics.median(
                r[one]["completions_per_replica_cpu_s"] for r in rounds
            ),
            "two_replicas_completions_per_cpu_s": statistics.median(
                r[two]["completions_per_replica_cpu_s"] for r in rounds
            ),
        },
        "spread": {
            "served_generate_calls_per_round": served,
            "spread": round(max(spreads), 3),
            "goal": "<= 0.10 (|a - b| / (a + b), worst round)",
        },
        "adapter_loads": {
            "routed": rounds[-1][two]["routed"],
            "loaded_now": rounds[-1][two]["loaded_adapters"],
        },
        "rounds": rounds,
    }
    c = summary["cpu_normalised"]
    c["projected_ratio_on_free_cores"] = round(
        2 * c["two_replicas_completions_per_cpu_s"] / c["one_replica_completions_per_cpu_s"], 3
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scale.json").write_text(json.dumps(summary, indent=2) + "\n")
    t, s = summary["throughput"], summary["spread"]
    loads = "; ".join(
        f"{replica}: {v['calls']} calls, {len(v['keys'])} adapters"
        for replica, v in summary["adapter_loads"]["routed"].items()
    )
    (out_dir / "scale.md").write_text(
        "\n".join(
            [
                "# Scale-out benchmark: evaluate phase, 1 vs 2 generator replicas (tiny Llama, CPU)",
                "",
                f"Setup: {summary['setup']['workload']}; {summary['setup']['in_flight']}; {ROUNDS} rounds, "
                f"sides alternating; {os.cpu_count()} CPUs, load average {load_at_start} at the start, "
                f"{summary['setup']['load_average_at_end']} at the end. Produced by `python -m bench scale`.",
                "",
                "| measure | 1 replica | 2 replicas | ratio / spread | goal |",
                "| --- | --- | --- | --- | --- |",
                f"| completions/s (median of rounds) | {t['one_replica_completions_per_s']} "
                f"| {t['two_replicas_completions_per_s']} | {t['ratio']}x (rounds {t['ratios_per_round']}) | >= 1.7x |",
                f"| Generate calls per replica (served) | | {s['served_generate_calls_per_round']} "
                f"| spread {s['spread']} | <= 0.10 |",
                "",
                f"Cores the replicas used (CPU seconds / wall, median): 1 replica {t['replica_cores'][one]}, "
                f"2 replicas {t['replica_cores'][two]}; the ratio cannot exceed what the second replica got. "
                f"The client (this process) used {max(r[two]['client_cores'] for r in rounds)} cores at most.",
                f"Completions per replica CPU-second: 1 replica {c['one_replica_completions_per_cpu_s']}, "
                f"2 replicas {c['two_replicas_completions_per_cpu_s']}; with a free core per replica the ratio "
                f"would approach {c['projected_ratio_on_free_cores']}x (a projection, not a measurement).",
                "",
                f"Adapter loads per replica (last round, routing): {loads}.",
                "",
            ]
        )
    )
    return {k: summary[k] for k in ("throughput", "spread", "cpu_normalised", "adapter_loads")}


if __name__ == "__main__":
    sys.path[:0] = [str(REPO), str(REPO / "protos")]
    print(json.dumps(main(REPO / "bench" / "results"), indent=2))
