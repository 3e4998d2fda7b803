"""The generator's OpenAI-compatible HTTP front door vs its gRPC port: completions/s at 8 concurrent clients.

One real server process (`polyglot-serve generator --http-port P`: gRPC and HTTP on one event loop over one
model; tiny Llama, CPU, `hf`, torch 1 thread). This process is the clients: 8 concurrent asyncio workers per
side, one prompt per request, each side the same 32 prompts per round with the same sampling (the `chat`
preset's numbers, seed 0, max_tokens 24), so both sides generate the same tokens. gRPC: the typed
`AsyncGeneratorClient`; HTTP: aiohttp posting `/v1/completions` (the client lm-eval's `local-completions`
uses). Rounds alternate which side goes first; the headline is the median of per-round ratios. Goal: >= 0.9.

    python -m bench openai        # writes bench/results/openai.json and .md
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_generator import MAX_TOKENS, PROMPTS, _shared_dir

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 16
CLIENTS = 8


async def _grpc_side(address: str, shares: list[list[str]]) -> tuple[int, int]:
    from services.generator.client import AsyncGeneratorClient

    client = AsyncGeneratorClient(address, timeout=300)

    async def worker(share: list[str]) -> tuple[int, int]:
        done = tokens = 0
        for prompt in share:
            (result,) = await client.generate_all([prompt], preset="chat", seed=0, max_tokens=MAX_TOKENS)
            done += result.error is None
            tokens += result.completion_tokens
        return done, tokens

    try:
        return _sum(await asyncio.gather(*(worker(s) for s in shares)))
    finally:
        await client.close()


async def _http_side(base_url: str, model: str, sampling: dict, shares: list[list[str]]) -> tuple[int, int]:
    import aiohttp

    async with aiohttp.ClientSession(base_url=base_url + "/") as session:

        async def worker(share: list[str]) -> tuple[int, int]:
            done = tokens = 0
            for prompt in share:
                async with session.post("completions", json={"model": model, "prompt": prompt, **sampling}) as r:
                    body = await r.json()
                    done += r.status == 200
                    tokens += body["usage"]["completion_tokens"]
            return done, tokens

        return _sum(await asyncio.gather(*(worker(s) for s in shares)))


def _sum(results) -> tuple[int, int]:
    return sum(r[0] for r in results), sum(r[1] for r in results)


def _timed(coro) -> tuple[float, tuple[int, int]]:
    start = time.perf_counter()
    out = asyncio.run(coro)
    return time.perf_counter() - start, out


def _serve(model: Path, grpc_port: int, http_port: int, log) -> subprocess.Popen:
    command = [sys.executable, "-m", "services.common.serve", "generator", "--model", str(model), "--device", "cpu",
               "--dtype", "float32", "--threads", "1", "--port", str(grpc_port), "--metrics-port", "0",
               "--http-port", str(http_port), "--log-level", "WARNING"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def main(out_dir: Path) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from services.common.client import wait_for_health
    from services.common.local import free_port
    from services.common.presets import get_preset
    from services.common.tiny_model import build_tiny_llama

    work = Path(tempfile.mkdtemp(prefix="bench-openai-"))
    model = build_tiny_llama(work / "tiny", _shared_dir() / "models" / "tokenizers" / "llama2", seed=0)
    chat = get_preset("chat").with_overrides(max_tokens=MAX_TOKENS, seed=0)
    sampling = chat.model_dump(include={"temperature", "top_p", "top_k", "frequency_penalty", "max_tokens", "seed"})
    sampling["stop"] = list(chat.stop)
    grpc_port, http_port = free_port(), free_port()
    address, base_url = f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}/v1"
    shares = [PROMPTS[i::CLIENTS] for i in range(CLIENTS)]
    rounds = []
    with open(work / "server.log", "wb") as log:
        server = _serve(model, grpc_port, http_port, log)
        try:
            wait_for_health(address, timeout=300)
            asyncio.run(_grpc_side(address, [PROMPTS[:2]]))  # warm-up: lazy initialisation on both paths
            asyncio.run(_http_side(base_url, str(model), sampling, [PROMPTS[:2]]))
            for i in range(ROUNDS):
                grpc_side = _grpc_side(address, shares)
                http_side = _http_side(base_url, str(model), sampling, shares)
                if i % 2:  # alternate which side goes first
                    t_http, (n_http, tok_http) = _timed(http_side)
                    t_grpc, (n_grpc, tok_grpc) = _timed(grpc_side)
                else:
                    t_grpc, (n_grpc, tok_grpc) = _timed(grpc_side)
                    t_http, (n_http, tok_http) = _timed(http_side)
                rounds.append({"grpc_s": round(t_grpc, 3), "http_s": round(t_http, 3), "completions": [n_grpc, n_http],
                               "completion_tokens": [tok_grpc, tok_http]})  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=60)

    n = len(PROMPTS)
    grpc_cps = n * ROUNDS / sum(r["grpc_s"] for r in rounds)
    http_cps = n * ROUNDS / sum(r["http_s"] for r in rounds)
    summary = {
        "benchmark": "openai",
        "setup": {
            "server": "polyglot-serve generator --http-port (one process, gRPC and HTTP on one event loop)",
            "model": "tiny random Llama (hidden 128, 2 layers, Llama 2 tokenizer), fp32, CPU, torch threads 1",
            "backend": "hf",
            "sampling": f"chat preset's numbers, seed 0, max_tokens {MAX_TOKENS}",
            "prompts_per_round": n,
            "rounds": ROUNDS,
            "concurrent_clients": CLIENTS,
            "prompts_per_request": 1,
            "clients": "gRPC: AsyncGeneratorClient; HTTP: aiohttp POST /v1/completions; 8 asyncio workers each",
            "cpus": os.cpu_count(),
        },
        "grpc_completions_per_s": round(grpc_cps, 2),
        "http_completions_per_s": round(http_cps, 2),
        "ratio": round(statistics.median(r["grpc_s"] / r["http_s"] for r in rounds), 3),
        "ratio_of_totals": round(http_cps / grpc_cps, 3),
        "goal": ">= 0.9",
        "rounds": rounds,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "openai.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "openai.md").write_text(
        "\n".join(
            [
                "# OpenAI-compatible HTTP front door vs gRPC (generator, hf backend, tiny Llama, CPU)",
                "",
                f"Setup: {summary['setup']['server']}; {CLIENTS} concurrent clients per side, one prompt per "
                f"request, {n} prompts per round, {ROUNDS} rounds interleaved; {summary['setup']['sampling']}; "
                f"{summary['setup']['clients']}; {os.cpu_count()} shared CPUs. Produced by `python -m bench openai`.",
                "",
                "| path | completions/s |",
                "| --- | --- |",
                f"| gRPC `Generate` (baseline) | {summary['grpc_completions_per_s']} |",
                f"| HTTP `/v1/completions` | {summary['http_completions_per_s']} |",
                "",
                f"Ratio HTTP / gRPC: **{summary['ratio']}** (median of per-round ratios; of totals "
                f"{summary['ratio_of_totals']}; goal >= 0.9). Completion tokens per round (gRPC, HTTP): "
                f"{[r['completion_tokens'] for r in rounds]}.",
                "",
            ]
        )
    )
    return {k: summary[k] for k in ("grpc_completions_per_s", "http_completions_per_s", "ratio", "ratio_of_totals")}
