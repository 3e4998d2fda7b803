"""GPU check of the official vLLM path the generator's `vllm` backend relies on, plus the backend itself.

Needs a CUDA GPU and an environment with the official vLLM wheel (the project's `vllm` extra):

    python3.11 -m venv .venv-gpu && .venv-gpu/bin/pip install -e '.[generator,vllm,dev]'
    HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 .venv-gpu/bin/python bench/gpu_check.py [--model DIR] [--out bench/results]

Without `--model` it builds a random Llama from the Llama 2 tokenizer in ../shared (no download): the
figures then measure mechanics and speed, not quality. It checks and records, in
`<out>/generator.gpu.json` (and prints):

1. seeds: the paper's chat sampling with the same per-request seed gives identical text twice, and
   another seed gives different text;
2. LoRA unmerged: `enable_lora` + `LoRARequest` changes greedy output; without it the base is unchanged;
3. prompt log-probs: the sum over a continuation equals a transformers forward pass (fp32 tolerance);
4. throughput: completions/s and generated tokens/s of `LLM.generate` for a batch, base vs LoRA;
5. the service: the same batch through `Generator` on the `vllm` backend behind gRPC on loopback, and
   the ratio of its completions/s to `LLM.generate`'s.

Exit code 0 when checks 1–3 and 5's answers hold.
"""

from __future__ import annotations

import argparse
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
    f"### Human: Write a short paragraph about {topic}.\n### Assistant:"
    for topic in ("the sea", "mountains", "coffee", "trains", "rain", "libraries", "bicycles", "winter")
] * 8  # 64 prompts
PAIRS = [("The capital of France is", " Paris"), ("Question: 2+2=", "4. Answer: yes"), ("", "Hello world")]


def build_models(work: Path, shared: Path, hidden: int, layers: int) -> tuple[Path, Path]:
    from services.common.tiny_model import build_tiny_llama
    from tests.fixtures.generator import make_tiny_lora

    heads = max(hidden // 64, 1)  # head size 64, as vLLM's kernels expect
    model = build_tiny_llama(
        work / "model",
        shared / "models" / "tokenizers" / "llama2",
        seed=0,
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
    )
    return model, make_tiny_lora(model, work / "lora", rank=16)


def reference_logprob(model_dir: Path, context: str, continuation: str) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from services.generator.engine import encode_pair

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).cuda().eval()
    ctx, cont = encode_pair(tok, context, continuation)
    ids = torch.tensor([ctx + cont], device="cuda")
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].float(), -1)
    rows = logprobs[len(ctx) - 1 : len(ctx) + len(cont) - 1]
    return float(rows.gather(-1, torch.tensor(cont, device="cuda")[:, None]).sum())


def main() -> int:
    parser = argparse.ArgumentParser(description="GPU check of the vLLM path (see the module docstring).")
    parser.add_argument("--model", type=Path, help="a local HF model directory (default: build a random Llama)")
    parser.add_argument("--hidden", type=int, default=1024, help="random model: hidden size")
    parser.add_argument("--layers", type=int, default=8, help="random model: layers")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    for key, value in {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}.items():
        os.environ.setdefault(key, value)

    import importlib.metadata as md

    import torch
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    from services.common.presets import get_preset

    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    shared = Path(os.environ.get("POLYGLOT_SHARED_DIR", REPO.parent / "shared"))
    if args.model:
        from tests.fixtures.generator import make_tiny_lora

        model_dir, lora_dir = args.model, make_tiny_lora(args.model, work / "lora", rank=16)
    else:
        model_dir, lora_dir = build_models(work, shared, args.hidden, args.layers)

    record: dict = {
        "gpu": torch.cuda.get_device_name(0),
        "versions": {p: md.version(p) for p in ("vllm", "torch", "transformers", "peft")},
        "host": platform.node(),
        "model": str(args.model or f"random Llama hidden {args.hidden}, {args.layers} layers"),
        "checks": {},
    }
    checks = record["checks"]
    start = time.perf_counter()
    llm = LLM(
        model=str(model_dir),
        dtype="float32",
        enable_lora=True,
        max_loras=2,
        max_lora_rank=16,
        lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        seed=0,
        gpu_memory_utilization=0.5,
    )
    record["engine_start_s"] = round(time.perf_counter() - start, 1)
    lora = LoRARequest("tiny-lora", 1, str(lora_dir))
    chat = get_preset("chat")

    def sampling(seed: int | None, **kw) -> SamplingParams:
        values = dict(
            temperature=chat.temperature,
            top_p=chat.top_p,
            top_k=chat.top_k,
            frequency_penalty=chat.frequency_penalty,
            max_tokens=32,
            stop=list(chat.stop),
            seed=seed,
        )
        values.update(kw)
        return SamplingParams(**values)

    def texts(outputs) -> list[str]:
        return [o.outputs[0].text for o in outputs]

    # 1. seeds
    a = texts(llm.generate(PROMPTS[:8], sampling(42)))
    b = texts(llm.generate(PROMPTS[:8], sampling(42)))
    c = texts(llm.generate(PROMPTS[:8], sampling(723)))
    checks["same_seed_identical"] = a == b
    checks["other_seed_differs"] = a != c

    # 2. LoRA served unmerged
    greedy = SamplingParams(temperature=0.0, max_tokens=32)
    base = texts(llm.generate(PROMPTS[:8], greedy))
    tuned = texts(llm.generate(PROMPTS[:8], greedy, lora_request=lora))
    checks["lora_changes_output"] = base != tuned
    checks["base_unchanged_after_lora"] = texts(llm.generate(PROMPTS[:8], greedy)) == base

    # 3. prompt log-probs vs transformers
    from transformers import AutoTokenizer

    from services.generator.engine import encode_pair

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    diffs = []
    for context, continuation in PAIRS:
        ctx, cont = encode_pair(tok, context, continuation)
        out = llm.generate(
            [{"prompt_token_ids": ctx + cont}], SamplingParams(max_tokens=1, prompt_logprobs=1, detokenize=False)
        )[0]
        got = sum(out.prompt_logprobs[len(ctx) + i][t].logprob for i, t in enumerate(cont))
        diffs.append(abs(got - reference_logprob(model_dir, context, continuation)))
    checks["prompt_logprobs_max_abs_diff"] = max(diffs)
    checks["prompt_logprobs_match"] = max(diffs) < 1e-3

    # 4. throughput of the engine itself
    bench = SamplingParams(temperature=0.8, top_p=0.9, top_k=50, max_tokens=args.max_tokens, seed=0)
    throughput = {}
    for label, request in (("base", None), ("lora", lora)):
        t0 = time.perf_counter()
        outs = llm.generate(PROMPTS, bench, lora_request=request)
        dt = time.perf_counter() - t0
        throughput[label] = {
            "completions_per_s": round(len(outs) / dt, 2),
            "tokens_per_s": round(sum(len(o.outputs[0].token_ids) for o in outs) / dt, 1),
        }
    record["llm_generate"] = throughput
    del llm
    torch.cuda.empty_cache()

    # 5. the generator service on the vllm backend, through gRPC
    from services.common.inprocess import serve_in_thread
    from services.generator.client import GeneratorClient
    from services.generator.factory import create_generator
    from services.generator.main import registrations
    from services.generator.settings import GeneratorSettings

    settings = GeneratorSettings(
        model=str(model_dir),
        backend="vllm",
        dtype="float32",
        max_loaded_adapters=2,
        max_lora_rank=16,
        gpu_memory_utilization=0.5,
        adapter_cache_dir=work / "adapter-cache",
    )
    generator = create_generator(settings)
    with serve_in_thread(registrations(generator)) as address, GeneratorClient(address) as client:
        client.load_adapter("tiny-lora", lora_dir.as_uri())
        first = [r.text for r in client.generate_all(PROMPTS[:8], preset="chat", seed=42, max_tokens=32)]
        again = [r.text for r in client.generate_all(PROMPTS[:8], preset="chat", seed=42, max_tokens=32)]
        checks["service_same_seed_identical"] = first == again
        scores = client.score(PAIRS)
        checks["service_score_ok"] = all(s.error is None for s in scores)
        t0 = time.perf_counter()
        results = client.generate_all(PROMPTS, temperature=0.8, top_p=0.9, top_k=50, max_tokens=args.max_tokens, seed=0)
        dt = time.perf_counter() - t0
        record["service_grpc"] = {"completions_per_s": round(len(results) / dt, 2)}
        record["service_vs_llm_generate"] = round(
            record["service_grpc"]["completions_per_s"] / throughput["base"]["completions_per_s"], 3
        )

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generator.gpu.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    required = [k for k, v in checks.items() if isinstance(v, bool)]
    return 0 if all(checks[k] for k in required) else 1


if __name__ == "__main__":  # vLLM spawns worker processes: keep the guard
    raise SystemExit(main())
