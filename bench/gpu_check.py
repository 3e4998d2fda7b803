"""The GPU check: one command that builds a Llama-2-7B-shaped random model on the device (no download), times
every GPU path of the project against its plain library baseline, records it all, and stops by itself.

    HF_HUB_OFFLINE=1 python bench/gpu_check.py                          # CUDA: 7B shape, bf16, <= 6 minutes
    python bench/gpu_check.py --device cpu --tiny --out /tmp/gpu-check  # the dry run CI makes (< 2 minutes)

Parts, each timed against a baseline in the same run, each skipped with its reason when the time left
cannot hold it (the budget, `--budget-s`, is enforced by a watchdog that writes what was measured and exits):

1. build: the random model (Llama 2's shape and tokenizer) and a random rank-16 LoRA, created on the device;
2. generator (hf backend): 64 prompts through the service over gRPC vs one plain `model.generate` on the
   same weights (greedy; completions/s, tokens/s, agreement); 64 Score pairs through gRPC vs one batched
   forward pass (pairs/s, largest log-prob difference);
3. trainer: a real trainer-service job (worker process, the paper's recipe: r 64, all linear layers,
   batch 4 x 16 accumulation = 64, sequences cut at 1,024; OASST conversations) vs plain TRL with the same
   arguments and TRL's padded batches: s/step, non-padding tokens/s, peak memory, model FLOPs
   utilisation and the hours 2,000 steps of 64 would take;
4. vLLM (when importable): seeds, unmerged LoRA, prompt log-probs against transformers, `LLM.generate`
   throughput, and the generator's `vllm` backend through gRPC against it.

MFU = model FLOPs per second / the device's dense bf16 peak (`PEAK_TFLOPS`, matched on the device name; none
on CPU), with model FLOPs = 6 N per trained token and 2 N per inferred token, N = parameters less the input
embedding (attention's own FLOPs left out, as usual). With LoRA the frozen weights get no gradient, so the
hardware does ~4 N per token: 6 N is the convention, and the MFU it gives is the one to compare with others.

Results: `<out>/gpu_check.json` and `.md` for the full shape on CUDA; `gpu_check.<device>-tiny.*` for
`--tiny` runs, so a dry run never overwrites a GPU record. Exit code 0 when no part failed and every check held.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "protos")]

LLAMA2_7B = dict(
    vocab_size=32000,
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
)
# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, from the vendors' data sheets; first match wins.
PEAK_TFLOPS = {"H200": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}
TOPICS = ("the sea", "mountains", "coffee", "trains", "rain", "libraries", "bicycles", "winter")
PROMPTS = [f"### Human: Write a short paragraph about {t}.### Assistant:" for t in TOPICS] * 8  # 64
PAIRS = [(f"### Human: Say something about {t}.### Assistant:", f" I like {t} very much.") for t in TOPICS] * 8


class Budget:
    """Wall-clock budget: parts ask before they start; a watchdog writes the record and exits at the end."""

    def __init__(self, seconds: float, on_expiry):
        self.seconds, self.started = seconds, time.monotonic()
        timer = threading.Timer(seconds, on_expiry)
        timer.daemon = True
        timer.start()

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)


class Check:
    """The run's record, written after every part (and by the watchdog), so a stop loses nothing measured."""

    def __init__(self, args: argparse.Namespace):
        suffix = ".cpu" if args.device == "cpu" else ""
        suffix = f".{args.device}-tiny" if args.tiny else suffix
        self.args, self.json = args, args.out / f"gpu_check{suffix}.json"
        self.record: dict[str, Any] = {"parts": {}, "checks": {}}
        self.current = ""
        self.lock = threading.Lock()
        self.budget = Budget(args.budget_s, self.expire)

    @contextlib.contextmanager
    def part(self, name: str, needs_s: float) -> Iterator[dict[str, Any] | None]:
        entry: dict[str, Any] = {}
        self.record["parts"][name] = entry
        if self.left() < needs_s:
            entry["skipped"] = f"{self.left():.0f} s of the budget left, the part needs ~{needs_s:.0f} s"
            yield None
            return
        self.current, started = name, time.monotonic()
        try:
            yield entry
        except Exception as exc:  # noqa: BLE001 - a failed part is recorded and the others still run
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["traceback"] = traceback.format_exc()[-3000:]
        finally:
            entry["seconds"] = round(time.monotonic() - started, 1)
            self.write()

    def left(self) -> float:
        return self.budget.left()

    def expire(self) -> None:
        self.record["stopped"] = f"the {self.args.budget_s:.0f} s budget ran out during {self.current or 'start-up'}"
        self.write()
        print(f"gpu_check: {self.record['stopped']}; results in {self.json}", file=sys.stderr, flush=True)
        os._exit(3)

    def write(self) -> None:
        with self.lock:
            self.args.out.mkdir(parents=True, exist_ok=True)
            self.record["elapsed_s"] = round(time.monotonic() - self.budget.started, 1)
            self.json.write_text(json.dumps(self.record, indent=2, default=str) + "\n")
            self.json.with_suffix(".md").write_text(markdown(self.record))


# -- helpers --------------------------------------------------------------------------------------------


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def timed(device: str, fn, *args, **kwargs) -> tuple[float, Any]:
    sync(device)
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    sync(device)
    return time.perf_counter() - t0, result


def peak_tflops(device: str) -> tuple[float | None, str]:
    if device != "cuda":
        return None, "no peak FLOPs for a CPU: MFU not computed"
    import torch

    name = torch.cuda.get_device_name(0)
    for key, tflops in PEAK_TFLOPS.items():
        if key in name:
            return tflops, f"{name}: {key} dense bf16 peak, {tflops:.0f} TFLOP/s"
    return None, f"{name} is not in the peak table: MFU not computed"


def mfu(flops_per_s: float, peak: float | None) -> float | None:
    return round(flops_per_s / (peak * 1e12), 4) if peak else None


def free_memory(device: str) -> None:
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


class PeakMemory:
    """Peak memory of a child process while it runs: device memory in use on CUDA (polled), else the
    largest resident set of the finished children."""

    def __init__(self, device: str):
        self.device, self.peak, self._stop = device, 0, threading.Event()

    def __enter__(self):
        if self.device == "cuda":
            import torch

            free, total = torch.cuda.mem_get_info()
            self.baseline = total - free
            self.thread = threading.Thread(target=self._poll, daemon=True)
            self.thread.start()
        return self

    def _poll(self) -> None:
        import torch

        while not self._stop.wait(0.2):
            free, total = torch.cuda.mem_get_info()
            self.peak = max(self.peak, total - free - self.baseline)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.device != "cuda":
            import resource

            self.peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def gib(n: float) -> float:
    return round(n / 2**30, 2)


# -- 1. build ---------------------------------------------------------------------------------------------


def build(work: Path, tokenizer_dir: Path, device: str, tiny: bool, entry: dict[str, Any]) -> tuple[Path, Path, int]:
    """A random Llama of the chosen shape, initialised on the device, saved; and a random LoRA for it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from services.common.tiny_model import TINY_LLAMA

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    shape = TINY_LLAMA if tiny else LLAMA2_7B
    config = LlamaConfig(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    config.pad_token_id = tokenizer.eos_token_id
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    params = sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" not in name)
    entry["params_total"] = sum(p.numel() for p in model.parameters())
    model_dir, lora_dir = work / "model", work / "lora"
    model.save_pretrained(model_dir)
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(model_dir)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lora = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=targets, init_lora_weights=False))
    lora.save_pretrained(lora_dir)
    entry.update(
        shape="tiny Llama" if tiny else "Llama-2-7B",
        params_without_embedding=params,
        dtype=str(dtype).removeprefix("torch."),
        checkpoint_gib=gib(sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))),
    )
    del model, lora
    free_memory(device)
    return model_dir, lora_dir, params


# -- 2. the generator's hf backend ----------------------------------------------------------------------


def generator_hf(model_dir: Path, lora_dir: Path, work: Path, args, n_params: int, peak, entry, checks) -> None:
    import torch

    from services.common.inprocess import serve_in_thread
    from services.generator.client import GeneratorClient
    from services.generator.engine import encode_pair
    from services.generator.factory import create_generator
    from services.generator.main import registrations
    from services.generator.settings import GeneratorSettings

    device, max_tokens = args.device, args.max_tokens
    settings = GeneratorSettings(
        model=str(model_dir),
        backend="hf",
        device=device,
        dtype="bfloat16" if device == "cuda" else "float32",
        max_batch_size=len(PROMPTS),
        threads=args.threads,
        adapter_cache_dir=work / "adapter-cache",
    )
    load_s, generator = timed(device, create_generator, settings)
    engine = generator.engine
    tok = engine.tokenizer
    entry["load_s"] = round(load_s, 1)
    with serve_in_thread(registrations(generator)) as address, GeneratorClient(address) as client:
        # Plain transformers on the same weights: one left-padded greedy `generate` over the batch.
        tok.padding_side = "left"
        batch = tok(PROMPTS, return_tensors="pt", padding=True).to(engine.device)

        def plain():
            with torch.inference_mode():
                return engine.model.generate(
                    **batch, do_sample=False, max_new_tokens=max_tokens, pad_token_id=engine.pad_id
                )

        def service():
            return client.generate_all(PROMPTS, temperature=0.0, max_tokens=max_tokens)

        service(), plain()  # warm-up: lazy initialisation on both paths
        calls = engine.worker.batches_run
        # Two rounds, the faster of each side: one disturbed run on a shared machine cannot decide the ratio.
        (service_s, results), (plain_s, out) = (
            min((timed(device, fn) for _ in range(2)), key=lambda run: run[0]) for fn in (service, plain)
        )
        checks["generator_all_completed"] = all(r.error is None for r in results)
        service_tokens = sum(r.completion_tokens for r in results)
        new = out[:, batch["input_ids"].shape[1] :].tolist()
        plain_ids = [ids[: next((i + 1 for i, t in enumerate(ids) if t in engine.eos_ids), len(ids))] for ids in new]
        plain_texts = [
            tok.decode([t for t in ids if t not in engine.eos_ids], skip_special_tokens=True) for ids in plain_ids
        ]
        plain_tokens = sum(len(ids) for ids in plain_ids)
        prompt_tokens = int(batch["attention_mask"].sum())
        entry["generate"] = {
            "prompts": len(PROMPTS),
            "max_tokens": max_tokens,
            "decoding": "greedy",
            "service_model_calls_per_request": (engine.worker.batches_run - calls) / 2,
            "service_grpc": {
                "seconds": round(service_s, 3),
                "completions_per_s": round(len(PROMPTS) / service_s, 2),
                "tokens_per_s": round(service_tokens / service_s, 1),
                "mfu": mfu(2 * n_params * (prompt_tokens + service_tokens) / service_s, peak),
            },
            "plain_generate": {
                "seconds": round(plain_s, 3),
                "completions_per_s": round(len(PROMPTS) / plain_s, 2),
                "tokens_per_s": round(plain_tokens / plain_s, 1),
                "mfu": mfu(2 * n_params * (prompt_tokens + plain_tokens) / plain_s, peak),
            },
            "service_over_plain_tokens_per_s": round((service_tokens / service_s) / (plain_tokens / plain_s), 3),
            # bf16 sums differ between the two batch layouts, so a few near-ties may go the other way.
            "same_text_share": round(
                sum(r.text.strip() == p.strip() for r, p in zip(results, plain_texts, strict=True)) / len(PROMPTS), 3
            ),
        }

        client.score(PAIRS[:2])  # warm-up
        score_s, scores = timed(device, client.score, PAIRS)
        checks["score_all_completed"] = all(s.error is None for s in scores)
        encoded = [encode_pair(tok, c, x) for c, x in PAIRS]
        forward_s, reference = timed(device, batched_logprobs, engine, encoded)
        entry["score"] = {
            "pairs": len(PAIRS),
            "service_grpc_tokens_per_s": round(sum(len(c) + len(x) for c, x in encoded) / score_s, 1),
            "service_grpc_pairs_per_s": round(len(PAIRS) / score_s, 1),
            "batched_forward_pairs_per_s": round(len(PAIRS) / forward_s, 1),
            "service_over_forward": round(forward_s / score_s, 3),
            "max_abs_logprob_diff": round(max(abs(s.logprob - r) for s, r in zip(scores, reference, strict=True)), 5),
        }
    # The server's stop closed the generator; its memory goes when this frame does (see `main`).


def batched_logprobs(engine, encoded: list[tuple[list[int], list[int]]]) -> list[float]:
    """log P(continuation | context) of every pair from one left-padded forward pass (no service code),
    computing the logits of the continuation positions only, as the service does."""
    import torch

    inputs = [list(c + x)[:-1] for c, x in encoded]
    keep = max(len(x) for _, x in encoded)
    width = max(map(len, inputs))
    ids = torch.full((len(inputs), width), engine.pad_id)
    mask = torch.zeros((len(inputs), width), dtype=torch.long)
    for i, row in enumerate(inputs):
        ids[i, width - len(row) :], mask[i, width - len(row) :] = torch.tensor(row), 1
    ids, mask = ids.to(engine.device), mask.to(engine.device)
    with torch.inference_mode():
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = engine.model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits
        logprobs = torch.log_softmax(logits.float(), -1)
    out = []
    for i, (_, cont) in enumerate(encoded):
        rows = logprobs[i, keep - len(cont) :]
        out.append(float(rows.gather(-1, torch.tensor(cont, device=rows.device)[:, None]).sum()))
    return out


# -- 3. the trainer -------------------------------------------------------------------------------------


def oasst_rows(shared: Path, tiny: bool) -> list[str]:
    """The OASST conversations (all 953; the first 64 for a dry run, which TRL then prepares in a blink)."""
    with open(shared / "data" / "oasst" / "qlora_oa_questions.jsonl", encoding="utf-8") as f:
        rows = [f"{r['input']} {r['output']}" for r in map(json.loads, f)]
    return rows[:64] if tiny else rows


def training_recipe(args) -> dict[str, Any]:
    steps = {"max_steps": args.train_steps, "logging_every": 1, "checkpoint_every": 10_000}
    if args.tiny:  # a few short sequences: the dry run checks the mechanics, not the paper's throughput
        return {**steps, "per_device_batch_size": 2, "effective_batch_size": 4, "max_length": 64}
    return steps  # the paper's recipe otherwise (services/trainer/config.py)


def step_rates(points: list[dict[str, float]], effective_batch: int) -> dict[str, Any]:
    """s/step and tokens/s after the first step (which pays for start-up), and the 2,000 x 64 projection."""
    steady = points[1:] if len(points) > 2 else points
    gaps = [b["time"] - a["time"] for a, b in zip(steady, steady[1:], strict=False)]
    seconds = steady[-1]["time"] - steady[0]["time"]
    s_per_step = statistics.median(gaps) if gaps else float("nan")
    tokens_per_s = (steady[-1]["tokens"] - steady[0]["tokens"]) / seconds if seconds > 0 else float("nan")
    return {
        "steps_timed": len(gaps),
        "s_per_step": round(s_per_step, 3),
        "non_padding_tokens_per_s": round(tokens_per_s, 1),
        # A step of the paper's batch of 64 takes 64 / effective_batch of these steps.
        "hours_for_2000_steps_of_64": round(s_per_step * 64 / effective_batch * 2000 / 3600, 2),
    }


def trainer_service(model_dir: Path, work: Path, shared: Path, args, recipe: dict[str, Any]) -> dict[str, Any]:
    from services.common.inprocess import serve_in_thread
    from services.common.settings import ServerSettings
    from services.common.store import open_store
    from services.trainer.client import TrainerClient
    from services.trainer.main import build as build_trainer
    from services.trainer.schema import Job, JobState
    from services.trainer.settings import TrainerSettings

    store = open_store(str(work / "store"))
    data = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in oasst_rows(shared, args.tiny)).encode()
    dataset_uri = store.put_bytes("datasets/oasst/train.jsonl", data).uri
    settings = TrainerSettings(state_dir=work / "trainer", torch_threads=args.threads)
    # The trainer reads and writes only under its roots: its state and this store (the job's output sits beside).
    server_settings = ServerSettings(port=0, metrics_port=0, store_uri=str(work / "store"), file_roots=[work])
    server = serve_in_thread(partial(build_trainer, settings=settings), server_settings)
    with server as address, TrainerClient(address) as client, PeakMemory(args.device) as memory:
        started = time.monotonic()
        job = client.submit(
            base_model=str(model_dir),
            dataset_uri=dataset_uri,
            output_uri=(work / "job").as_uri(),
            idempotency_key="gpu-check",
            training=recipe,
        )
        final = next(e for e in client.watch(job.id) if isinstance(e, Job) and e.state.terminal)
        wall = time.monotonic() - started
    if final.state is not JobState.SUCCEEDED:
        raise RuntimeError(f"the trainer job failed: {final.error}")
    progress = settings.jobs_dir / job.id / "work" / "progress.jsonl"
    points = [
        {"time": e["time"], "step": e["step"], "tokens": e["tokens_seen"]}
        for e in map(json.loads, progress.read_text().splitlines())
        if e["event"] == "log"
    ]
    return {"job_wall_s": round(wall, 1), "peak_memory_gib": gib(memory.peak), "points": points}


def plain_trl(model_dir: Path, work: Path, shared: Path, args, recipe_values: dict[str, Any]) -> dict[str, Any]:
    """TRL alone, in this process: the recipe's SFTConfig and TRL's own (padded) batches."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from services.trainer.recipe import build_recipe

    recipe = build_recipe({**recipe_values, "padding_free": False})
    on_gpu = args.device == "cuda"
    points: list[dict[str, float]] = []

    class Steps(TrainerCallback):
        def on_step_end(self, a, state, control, **kwargs):
            sync(args.device)
            points.append({"time": time.time(), "step": state.global_step, "tokens": state.num_input_tokens_seen})

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.pad_token = tokenizer.eos_token
    kwargs = recipe.sft_kwargs(output_dir=str(work / "plain"), device=args.device, bf16=on_gpu)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer = SFTTrainer(
        model=str(model_dir),
        args=SFTConfig(**{**kwargs, "save_strategy": "no"}),
        train_dataset=Dataset.from_dict({"text": oasst_rows(shared, args.tiny)}),
        processing_class=tokenizer,
        peft_config=LoraConfig(**recipe.lora_kwargs()),
        callbacks=[Steps()],
    )
    started = time.monotonic()
    trainer.train()
    wall = time.monotonic() - started
    if on_gpu:
        peak = torch.cuda.max_memory_allocated()
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # of this whole process
    del trainer
    free_memory(args.device)
    return {"train_wall_s": round(wall, 1), "peak_memory_gib": gib(peak), "points": points}


def trainer_part(model_dir: Path, work: Path, shared: Path, args, n_params: int, peak, entry, checks) -> None:
    from services.trainer.recipe import build_recipe

    values = training_recipe(args)
    recipe = build_recipe(values)
    entry["recipe"] = {k: v for k, v in recipe.model_dump().items() if k not in ("checkpoint_every", "merge_adapter")}
    for name, run in (("service_job", trainer_service), ("plain_trl", plain_trl)):
        result = run(model_dir, work, shared, args, values)
        points = result.pop("points")
        rates = step_rates(points, recipe.effective_batch_size)
        rates["mfu"] = mfu(6 * n_params * rates["non_padding_tokens_per_s"], peak)
        entry[name] = {**result, **rates}
        checks[f"trainer_{name}_ran_every_step"] = points[-1]["step"] == recipe.max_steps
        free_memory(args.device)
    service, plain = entry["service_job"], entry["plain_trl"]
    entry["service_over_plain_tokens_per_s"] = round(
        service["non_padding_tokens_per_s"] / plain["non_padding_tokens_per_s"], 3
    )
    entry["plain_over_service_s_per_step"] = round(plain["s_per_step"] / service["s_per_step"], 3)


# -- 4. vLLM ----------------------------------------------------------------------------------------------


def vllm_part(model_dir: Path, lora_dir: Path, work: Path, args, peak, n_params: int, entry, checks) -> None:
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    from services.common.presets import get_preset
    from services.generator.engine import encode_pair

    dtype = "bfloat16" if args.device == "cuda" else "float32"
    start_s, llm = timed(
        args.device,
        LLM,
        model=str(model_dir),
        dtype=dtype,
        enable_lora=True,
        max_loras=2,
        max_lora_rank=16,
        seed=0,
        gpu_memory_utilization=0.5,
    )
    entry["engine_start_s"] = round(start_s, 1)
    lora = LoRARequest("random-lora", 1, str(lora_dir))
    chat = get_preset("chat")
    chat_params = dict(
        temperature=chat.temperature,
        top_p=chat.top_p,
        top_k=chat.top_k,
        frequency_penalty=chat.frequency_penalty,
        max_tokens=32,
        stop=list(chat.stop),
    )

    def texts(outputs) -> list[str]:
        return [o.outputs[0].text for o in outputs]

    a = texts(llm.generate(PROMPTS[:8], SamplingParams(**chat_params, seed=42)))
    checks["vllm_same_seed_identical"] = a == texts(llm.generate(PROMPTS[:8], SamplingParams(**chat_params, seed=42)))
    checks["vllm_other_seed_differs"] = a != texts(llm.generate(PROMPTS[:8], SamplingParams(**chat_params, seed=723)))
    greedy = SamplingParams(temperature=0.0, max_tokens=32)
    base = texts(llm.generate(PROMPTS[:8], greedy))
    checks["vllm_lora_changes_output"] = base != texts(llm.generate(PROMPTS[:8], greedy, lora_request=lora))
    checks["vllm_base_unchanged_after_lora"] = texts(llm.generate(PROMPTS[:8], greedy)) == base

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    encoded = [encode_pair(tok, c, x) for c, x in PAIRS[:8]]
    got = []
    for ctx, cont in encoded:
        out = llm.generate([{"prompt_token_ids": ctx + cont}], SamplingParams(max_tokens=1, prompt_logprobs=1))[0]
        got.append(sum(out.prompt_logprobs[len(ctx) + i][t].logprob for i, t in enumerate(cont)))
    entry["prompt_logprob_sums"] = [round(g, 4) for g in got]

    sampling = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, ignore_eos=True)
    throughput = {}
    for label, request in (("base", None), ("lora", lora)):
        seconds, outs = timed(args.device, llm.generate, PROMPTS, sampling, lora_request=request)
        tokens = sum(len(o.outputs[0].token_ids) for o in outs)
        prompt_tokens = sum(len(o.prompt_token_ids) for o in outs)
        throughput[label] = {
            "completions_per_s": round(len(outs) / seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1),
            "mfu": mfu(2 * n_params * (tokens + prompt_tokens) / seconds, peak),
        }
    entry["llm_generate"] = throughput
    del llm
    free_memory(args.device)

    from services.common.inprocess import serve_in_thread
    from services.generator.client import GeneratorClient
    from services.generator.factory import create_generator
    from services.generator.main import registrations
    from services.generator.settings import GeneratorSettings

    settings = GeneratorSettings(
        model=str(model_dir),
        backend="vllm",
        dtype=dtype,
        max_loaded_adapters=2,
        max_lora_rank=16,
        gpu_memory_utilization=0.5,
        adapter_cache_dir=work / "vllm-cache",
    )
    generator = create_generator(settings)
    with serve_in_thread(registrations(generator)) as address, GeneratorClient(address) as client:
        client.load_adapter("random-lora", lora_dir.as_uri())
        first = client.generate_all(PROMPTS[:8], preset="chat", seed=42, max_tokens=32)
        again = client.generate_all(PROMPTS[:8], preset="chat", seed=42, max_tokens=32)
        checks["vllm_service_same_seed_identical"] = [r.text for r in first] == [r.text for r in again]
        scores = client.score(PAIRS[:8])
        entry["service_logprob_max_abs_diff_vs_llm"] = round(
            max(abs(s.logprob - g) for s, g in zip(scores, got, strict=True)), 5
        )
        seconds, results = timed(args.device, client.generate_all, PROMPTS, temperature=0.0, max_tokens=args.max_tokens)
        entry["service_grpc_completions_per_s"] = round(len(results) / seconds, 2)
        entry["service_grpc_tokens_per_s"] = round(sum(r.completion_tokens for r in results) / seconds, 1)
        entry["service_over_llm_generate"] = round(
            entry["service_grpc_completions_per_s"] / throughput["base"]["completions_per_s"], 3
        )


# -- the run ----------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time every GPU path against its plain baseline (module docstring).")
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda when available")
    parser.add_argument("--tiny", action="store_true", help="the tiny Llama shape instead of Llama-2-7B's (a dry run)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="where the record goes")
    parser.add_argument("--budget-s", type=float, default=None, help="stop after this long (default 345; tiny 110)")
    parser.add_argument("--max-tokens", type=int, default=None, help="new tokens per prompt (default 128; tiny 8)")
    parser.add_argument(
        "--train-steps", type=int, default=None, help="optimizer steps per trainer run (default 5; tiny 3)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; cpu: 1)")
    shared = Path(os.environ.get("POLYGLOT_SHARED_DIR", REPO.parent / "shared"))
    parser.add_argument("--shared", type=Path, default=shared, help="data and tokenizer (POLYGLOT_SHARED_DIR)")
    args = parser.parse_args(argv)
    args.budget_s = args.budget_s or (110.0 if args.tiny else 345.0)
    args.max_tokens = args.max_tokens or (8 if args.tiny else 128)
    args.train_steps = args.train_steps or (3 if args.tiny else 5)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        os.environ.setdefault(key, value)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the trainer's worker picks its device itself
    import importlib.metadata as md

    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device == "cpu":
        args.threads = args.threads or 1  # two threads on two busy cores spin-wait: several times slower
        torch.set_num_threads(args.threads)
    check = Check(args)
    peak, peak_source = peak_tflops(args.device)
    check.record.update(
        device=torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU ({os.cpu_count()} cores)",
        host=platform.node(),
        peak_flops=peak_source,
        versions={p: md.version(p) for p in ("torch", "transformers", "trl", "peft") if importlib.util.find_spec(p)},
        budget_s=args.budget_s,
    )
    checks = check.record["checks"]
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    big = args.device == "cuda" and not args.tiny  # time estimates: what a part needs to be worth starting
    with check.part("build", 90 if big else 5) as entry:
        model_dir, lora_dir, n_params = build(
            work, args.shared / "models" / "tokenizers" / "llama2", args.device, args.tiny, entry
        )
    if "error" in check.record["parts"]["build"]:
        check.write()
        return 1
    with check.part("generator_hf", 60 if big else 10) as entry:
        if entry is not None:
            generator_hf(model_dir, lora_dir, work, args, n_params, peak, entry, checks)
    free_memory(args.device)
    with check.part("trainer", 150 if big else 20) as entry:
        if entry is not None:
            trainer_part(model_dir, work, args.shared, args, n_params, peak, entry, checks)
    if importlib.util.find_spec("vllm") is None:
        check.record["parts"]["vllm"] = {"skipped": "vllm is not importable here (the project's `vllm` extra)"}
    else:
        with check.part("vllm", 120 if big else 30) as entry:
            if entry is not None:
                vllm_part(model_dir, lora_dir, work, args, peak, n_params, entry, checks)
    check.current = ""
    if big:
        check.record["plan_figures"] = plan_figures(check.record)
    check.write()
    print(json.dumps(check.record, indent=2, default=str))
    failed = [name for name, part in check.record["parts"].items() if "error" in part]
    return 0 if not failed and all(v for v in checks.values() if isinstance(v, bool)) else 1


def plan_figures(record: dict[str, Any]) -> dict[str, Any]:
    """What `polyglot plan --gpus N` reads (flows/plan_cluster.py): per-GPU figures of the services, at this
    model's size; generation from the `vllm` backend when it ran (what the study serves with), else `hf`."""
    parts = record["parts"]
    figures: dict[str, Any] = {"gpu": record["device"], "params_b": round(parts["build"]["params_total"] / 1e9, 2)}
    generation = parts.get("vllm", {}).get("service_grpc_tokens_per_s")
    hf = parts.get("generator_hf", {})
    if generation is None and "generate" in hf:
        generation = hf["generate"]["service_grpc"]["tokens_per_s"]
    if generation:
        figures["generation_tokens_per_second"] = generation
    if "score" in hf:
        figures["prefill_tokens_per_second"] = hf["score"]["service_grpc_tokens_per_s"]
    trainer = parts.get("trainer", {})
    if "service_job" in trainer:
        figures["train_seconds_per_step"] = trainer["service_job"]["s_per_step"]
        figures["train_batch"] = trainer["recipe"]["effective_batch_size"]
    return figures


# -- the record as markdown --------------------------------------------------------------------------------


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# GPU check",
        "",
        f"{r.get('device', '?')}; {r.get('peak_flops', '')}; budget {r.get('budget_s')} s, "
        f"elapsed {r.get('elapsed_s')} s.",
        "",
    ]
    if "stopped" in r:
        lines += [f"**Stopped: {r['stopped']}.**", ""]
    parts = r.get("parts", {})
    for name, part in parts.items():
        if "skipped" in part:
            lines.append(f"- {name}: skipped ({part['skipped']})")
        elif "error" in part:
            lines.append(f"- {name}: **failed** ({part['error']})")
        else:
            lines.append(f"- {name}: done in {part.get('seconds')} s")
    gen = parts.get("generator_hf", {})
    if "generate" in gen:
        g, s = gen["generate"], gen["score"]
        lines += ["", "## Generator, hf backend", "", "| | completions/s | tokens/s | MFU |", "|---|---|---|---|"]
        for label, key in (("service over gRPC", "service_grpc"), ("plain model.generate", "plain_generate")):
            lines.append(f"| {label} | {g[key]['completions_per_s']} | {g[key]['tokens_per_s']} | {g[key]['mfu']} |")
        lines += [
            "",
            f"Service / plain tokens/s: **{g['service_over_plain_tokens_per_s']}**; same greedy text: "
            f"{g['same_text_share']}. Score: {s['service_grpc_pairs_per_s']} pairs/s through gRPC vs "
            f"{s['batched_forward_pairs_per_s']} in one batched forward (**{s['service_over_forward']}**), "
            f"largest log-prob difference {s['max_abs_logprob_diff']}.",
        ]
    tr = parts.get("trainer", {})
    if "plain_trl" in tr:
        lines += [
            "",
            "## Trainer",
            "",
            "| | s/step | non-padding tokens/s | peak memory GiB | MFU | h for 2,000 x 64 |",
            "|---|---|---|---|---|---|",
        ]
        for label, key in (("service job (padding-free)", "service_job"), ("plain TRL (padded)", "plain_trl")):
            m = tr[key]
            lines.append(
                f"| {label} | {m['s_per_step']} | {m['non_padding_tokens_per_s']} | {m['peak_memory_gib']} | "
                f"{m['mfu']} | {m['hours_for_2000_steps_of_64']} |"
            )
        lines += [
            "",
            f"Service / plain non-padding tokens/s: **{tr['service_over_plain_tokens_per_s']}**. Recipe: "
            f"{json.dumps(tr['recipe'])}.",
        ]
    vl = parts.get("vllm", {})
    if "llm_generate" in vl:
        lines += [
            "",
            "## vLLM",
            "",
            f"LLM.generate: {json.dumps(vl['llm_generate'])}; service over gRPC / LLM.generate: "
            f"**{vl.get('service_over_llm_generate')}**.",
        ]
    lines += ["", "## Checks", "", *(f"- {k}: {v}" for k, v in r.get("checks", {}).items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":  # vLLM spawns worker processes: keep the guard
    raise SystemExit(main())
