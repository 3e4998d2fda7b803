"""Generator throughput on the tiny Llama, CPU, `hf` backend — ratios measured in one run.

1. gRPC overhead: completions/s through a real gRPC server on loopback vs the same `Generator` called
   in-process, same prompts and sampling (the paper's `chat` preset, seed 0, short max_tokens).
   Goal: ratio >= 0.95.
2. Dynamic batching: 8 concurrent clients sending one prompt per request vs the same requests one at a
   time, both through gRPC. Reported: the speed-up and how many model calls each needed.

Rounds interleave the two sides of each comparison (alternating which goes first) so that load from
other processes on this shared machine hits both alike; the headline is the median of per-round ratios,
which one disturbed round cannot swing (the ratio of totals is reported too). torch runs with one
thread (restored afterwards): on 2 busy cores, two threads were ~4x slower for this model.

    python -m bench generator        # writes bench/results/generator.json and .md
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_TOKENS = 24
ROUNDS = 5
CLIENTS = 8
TOPICS = [
    "the sea",
    "a mountain",
    "coffee",
    "trains",
    "rain",
    "a library",
    "bicycles",
    "winter",
    "music",
    "a market",
    "bread",
    "the moon",
    "a river",
    "chess",
    "gardens",
    "a lighthouse",
]
PROMPTS = [f"### Human: Write one sentence about {t}.\n### Assistant:" for t in TOPICS] * 2  # 32 prompts


def _shared_dir() -> Path:
    return Path(os.environ.get("POLYGLOT_SHARED_DIR", REPO.parent / "shared"))


async def _in_process(generator, params, prompts: list[str], per_request: int) -> int:
    done = 0
    for start in range(0, len(prompts), per_request):
        async for outcome in generator.generate(prompts[start : start + per_request], params):
            done += outcome.error is None
    return done


def _through_grpc(address: str, prompts: list[str], per_request: int) -> int:
    from services.generator.client import GeneratorClient

    with GeneratorClient(address) as client:
        done = 0
        for start in range(0, len(prompts), per_request):
            chunk = prompts[start : start + per_request]
            results = client.generate_all(chunk, preset="chat", seed=0, max_tokens=MAX_TOKENS)
            done += sum(r.error is None for r in results)
    return done


def _concurrent(address: str, prompts: list[str], clients: int) -> int:
    from services.generator.client import GeneratorClient

    def one_client(share: list[str]) -> int:
        with GeneratorClient(address) as client:
            return sum(
                client.generate_all([p], preset="chat", seed=0, max_tokens=MAX_TOKENS)[0].error is None
                for p in share
            )

    shares = [prompts[i::clients] for i in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(one_client, shares))


def _timed(fn, *args) -> tuple[float, int]:
    start = time.perf_counter()
    n = fn(*args)
    return time.perf_counter() - start, n


def main(out_dir: Path) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from services.common.inprocess import serve_in_thread
    from services.common.presets import get_preset
    from services.common.tiny_model import build_tiny_llama
    from services.generator.factory import create_generator
    from services.generator.main import registrations
    from services.generator.settings import GeneratorSettings

    saved_threads = torch.get_num_threads()
    work = Path(tempfile.mkdtemp(prefix="bench-generator-"))
    model = build_tiny_llama(work / "tiny", _shared_dir() / "models" / "tokenizers" / "llama2", seed=0)
    settings = GeneratorSettings(
        model=str(model), device="cpu", dtype="float32", threads=1, adapter_cache_dir=work / "adapters"
    )
    params = get_preset("chat").with_overrides(max_tokens=MAX_TOKENS, seed=0)
    generator = create_generator(settings)
    worker = generator.engine.worker
    per_request = 8
    try:
        with serve_in_thread(registrations(generator, close_on_stop=False)) as address:
            # Warm-up: first calls pay for lazy initialisation on both paths.
            asyncio.run(_in_process(generator, params, PROMPTS[:8], per_request))
            _through_grpc(address, PROMPTS[:8], per_request)

            overhead_rounds, batching_rounds = [], []
            for _ in range(ROUNDS):
                local = (lambda: asyncio.run(_in_process(generator, params, PROMPTS, per_request)),)
                remote = (_through_grpc, address, PROMPTS, per_request)
                if len(overhead_rounds) % 2:  # alternate which side goes first
                    t_grpc, n_grpc = _timed(*remote)
                    t_local, n_local = _timed(*local)
                else:
                    t_local, n_local = _timed(*local)
                    t_grpc, n_grpc = _timed(*remote)
                overhead_rounds.append({"in_process_s": t_local, "grpc_s": t_grpc, "completions": [n_local, n_grpc]})
                b0 = worker.batches_run
                t_seq, n_seq = _timed(_through_grpc, address, PROMPTS, 1)
                b1 = worker.batches_run
                t_conc, n_conc = _timed(_concurrent, address, PROMPTS, CLIENTS)
                b2 = worker.batches_run
                batching_rounds.append(
                    {
                        "one_at_a_time_s": t_seq,
                        "concurrent_s": t_conc,
                        "model_calls": [b1 - b0, b2 - b1],
                        "completions": [n_seq, n_conc],
                    }
                )
    finally:
        asyncio.run(generator.aclose())
        torch.set_num_threads(saved_threads)

    n = len(PROMPTS)
    local_cps = n * ROUNDS / sum(r["in_process_s"] for r in overhead_rounds)
    grpc_cps = n * ROUNDS / sum(r["grpc_s"] for r in overhead_rounds)
    seq_cps = n * ROUNDS / sum(r["one_at_a_time_s"] for r in batching_rounds)
    conc_cps = n * ROUNDS / sum(r["concurrent_s"] for r in batching_rounds)
    summary = {
        "benchmark": "generator",
        "setup": {
            "model": "tiny random Llama (hidden 128, 2 layers, Llama 2 tokenizer), fp32, CPU, torch threads 1",
            "backend": "hf",
            "sampling": "chat preset (top_p 0.9, top_k 50, T 0.8, frequency_penalty 0.2), seed 0, "
            f"max_tokens {MAX_TOKENS}",
            "prompts_per_round": n,
            "rounds": ROUNDS,
            "prompts_per_request_overhead_test": per_request,
            "concurrent_clients": CLIENTS,
            "batch_window_ms": settings.batch_window_ms,
            "cpus": os.cpu_count(),
        },
        "grpc_vs_in_process": {
            "in_process_completions_per_s": round(local_cps, 2),
            "grpc_completions_per_s": round(grpc_cps, 2),
            "ratio": round(statistics.median(r["in_process_s"] / r["grpc_s"] for r in overhead_rounds), 3),
            "ratio_of_totals": round(grpc_cps / local_cps, 3),
            "goal": ">= 0.95",
        },
        "dynamic_batching": {
            "one_at_a_time_completions_per_s": round(seq_cps, 2),
            "concurrent_completions_per_s": round(conc_cps, 2),
            "speedup": round(statistics.median(r["one_at_a_time_s"] / r["concurrent_s"] for r in batching_rounds), 2),
            "speedup_of_totals": round(conc_cps / seq_cps, 2),
            "model_calls_per_round": {
                "one_at_a_time": [r["model_calls"][0] for r in batching_rounds],
                "concurrent": [r["model_calls"][1] for r in batching_rounds],
            },
        },
        "rounds": {"overhead": overhead_rounds, "batching": batching_rounds},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "generator.json").write_text(json.dumps(summary, indent=2) + "\n")
    g, d = summary["grpc_vs_in_process"], summary["dynamic_batching"]
    (out_dir / "generator.md").write_text(
        "\n".join(
            [
                "# Generator benchmark (hf backend, tiny Llama, CPU)",
                "",
                f"Setup: {summary['setup']['sampling']}; {n} prompts per round, {ROUNDS} rounds, interleaved; "
                f"torch 1 thread; {os.cpu_count()} shared CPUs. Produced by `python -m bench generator`.",
                "",
                "| comparison | baseline | measured | ratio |",
                "| --- | --- | --- | --- |",
                f"| gRPC vs in-process (8 prompts/request) | {g['in_process_completions_per_s']} completions/s "
                f"| {g['grpc_completions_per_s']} completions/s "
                f"| {g['ratio']} median of rounds (of totals {g['ratio_of_totals']}; goal >= 0.95) |",
                f"| {CLIENTS} concurrent clients vs one at a time (1 prompt/request) "
                f"| {d['one_at_a_time_completions_per_s']} completions/s "
                f"| {d['concurrent_completions_per_s']} completions/s "
                f"| {d['speedup']}x median of rounds (of totals {d['speedup_of_totals']}x) |",
                "",
                f"Model calls per round: one at a time {d['model_calls_per_round']['one_at_a_time']}, "
                f"concurrent {d['model_calls_per_round']['concurrent']} "
                "(dynamic batching merged the concurrent requests).",
                "",
            ]
        )
    )
    return summary
