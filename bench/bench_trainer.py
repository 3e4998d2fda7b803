"""Trainer throughput: a job through the service vs the same TRL training in a plain script.

    python -m bench trainer                   # writes bench/results/trainer.json and trainer.md
    POLYGLOT_BENCH_TRAINER_REPS=1 python -m bench trainer
    POLYGLOT_BENCH_TRAINER_PARTS=concurrent python -m bench trainer   # one part; the other's results are kept

Both sides train the tiny random Llama (real Llama 2 tokenizer) on the same OASST rows with the same
arguments (`TrainingRecipe.sft_kwargs`: same steps, batch, length, seed, checkpoint interval), each in a
fresh Python process with the same torch thread count, and runs alternate (plain, service, plain, …) so
that the shared machine's load hits both alike.

Two ratios, service / plain:
- steady-state tokens/s: non-padding tokens per second inside the training loop, from the step after
  warm-up to the last step (what a long job's speed is made of);
- end-to-end wall time: plain = process start to exit (imports, training, saving the adapter); service =
  SubmitJob to the final WatchJob event (submit-time checks, worker start-up and imports, training,
  checkpoint uploads to the artifact store, adapter/card upload). Start-up is a fixed cost that a
  2,000-step job amortises; on a 40-step toy run it weighs heavily.

And one more, `concurrent`: two jobs through one service with `max_concurrent_jobs=2` (one CPU thread
each, the CPU device) against the same two jobs with `max_concurrent_jobs=1` (one after the other, one
thread each), wall time from the first submit to the last job's end; goal concurrent/sequential <= 0.6
on a machine with two free cores (the two orders alternate between repetitions).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
NAME = "trainer"
WARMUP_STEPS = 3  # steady state starts after these (first steps pay for lazy initialisation)
RECIPE: dict[str, Any] = {
    "learning_rate": 1e-3,
    "warmup_ratio": 0.03,
    "max_steps": 30,
    "per_device_batch_size": 4,
    "effective_batch_size": 4,
    "max_length": 128,
    "lora_r": 64,
    "lora_alpha": 16,
    "checkpoint_every": 15,
    "logging_every": 1,
}
THREADS = 1  # one thread: no OpenMP spin-waits, so CPU time measures work even on a busy machine


def _oasst_jsonl(shared: Path, n: int) -> bytes:
    """The first `n` OASST conversations in Guanaco form (`input + " " + output`, every turn)."""
    lines = []
    with open(shared / "data" / "oasst" / "qlora_oa_questions.jsonl", encoding="utf-8") as f:
        for line, _ in zip(f, range(n), strict=False):
            record = json.loads(line)
            lines.append(json.dumps({"text": f"{record['input']} {record['output']}"}, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8")


def steady_rate(points: list[dict[str, float]], clock: str = "time") -> float:
    """Tokens per second of `clock` (`time`: wall, `cpu`: the training process's CPU time) between the log
    after `WARMUP_STEPS` and the last log ({time, cpu, step, tokens} points)."""
    points = sorted(points, key=lambda p: p["step"])
    start = next(p for p in points if p["step"] >= WARMUP_STEPS)
    end = points[-1]
    return (end["tokens"] - start["tokens"]) / (end[clock] - start[clock])


# -- the plain script (runs in its own process) ------------------------------------------------------


def plain_main(config_path: str) -> None:
    """Plain TRL: SFTTrainer + LoRA with the recipe's arguments, nothing of the service around it."""
    config = json.loads(Path(config_path).read_text())
    import torch

    torch.set_num_threads(config["threads"])
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from services.trainer.dataset import load_texts
    from services.trainer.recipe import TrainingRecipe

    recipe = TrainingRecipe(**config["recipe"])
    out = Path(config["out_dir"])
    points: list[dict[str, float]] = []

    class Timing(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                points.append(
                    {
                        "time": time.time(),
                        "cpu": time.process_time(),
                        "step": state.global_step,
                        "tokens": state.num_input_tokens_seen,
                    }
                )

    tokenizer = AutoTokenizer.from_pretrained(config["base_model"])
    tokenizer.pad_token = tokenizer.eos_token
    trainer = SFTTrainer(
        model=config["base_model"],
        args=SFTConfig(**recipe.sft_kwargs(output_dir=str(out / "run"))),
        train_dataset=Dataset.from_dict({"text": load_texts(config["dataset"])}),
        processing_class=tokenizer,
        peft_config=LoraConfig(**recipe.lora_kwargs()),
        data_collator=recipe.data_collator(tokenizer.pad_token_id),  # the same batches as the service's worker
        callbacks=[Timing()],
    )
    trainer.train()
    trainer.save_model(str(out / "adapter"))
    (out / "points.json").write_text(json.dumps(points))


def run_plain(work: Path, base_model: Path, dataset: Path, rep: int) -> dict[str, Any]:
    out = work / f"plain-{rep}"
    out.mkdir(parents=True)
    config = {
        "base_model": str(base_model),
        "dataset": str(dataset),
        "recipe": RECIPE,
        "out_dir": str(out),
        "threads": THREADS,
    }
    (out / "config.json").write_text(json.dumps(config))
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(THREADS),
        "MKL_NUM_THREADS": str(THREADS),
        "TOKENIZERS_PARALLELISM": "false",
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "bench.bench_trainer", "plain", str(out / "config.json")],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=open(out / "log.txt", "wb"),
    )
    wall = time.monotonic() - started
    points = json.loads((out / "points.json").read_text())
    return {
        "wall_seconds": wall,
        "steady_tokens_per_second": steady_rate(points),
        "steady_tokens_per_cpu_second": steady_rate(points, "cpu"),
        "steps": points[-1]["step"],
        "load_average": os.getloadavg()[0],
    }


def run_service(work: Path, base_model: Path, dataset_uri: str, rep: int) -> dict[str, Any]:
    from services.common.inprocess import serve_in_thread
    from services.common.settings import ServerSettings
    from services.trainer.client import TrainerClient
    from services.trainer.main import build
    from services.trainer.schema import Job, JobState, Progress
    from services.trainer.settings import TrainerSettings

    settings = TrainerSettings(state_dir=work / f"service-{rep}", torch_threads=THREADS)
    # The bench's datasets and outputs live in its work directory: the trainer may use it (its file roots).
    server_settings = ServerSettings(port=0, metrics_port=0, file_roots=[work])
    server = serve_in_thread(partial(build, settings=settings), server_settings)
    with server as address, TrainerClient(address) as client:
        started, cpu_started = time.monotonic(), time.process_time()
        job = client.submit(
            base_model=str(base_model),
            dataset_uri=dataset_uri,
            output_uri=(work / f"service-out-{rep}").as_uri(),
            idempotency_key=f"bench-{rep}",
            training=RECIPE,
        )
        reported = []
        for event in client.watch(job.id):
            if isinstance(event, Progress) and event.step >= WARMUP_STEPS and event.loss:
                reported.append(event.tokens_per_second)
            if isinstance(event, Job) and event.state in (JobState.SUCCEEDED, JobState.FAILED):
                final = event
        wall = time.monotonic() - started
        service_cpu = time.process_time() - cpu_started  # gRPC server, job manager and client threads
    if final.state is not JobState.SUCCEEDED:
        raise RuntimeError(f"bench job failed: {final.error}")
    progress = settings.jobs_dir / job.id / "work" / "progress.jsonl"
    points = [
        {"time": e["time"], "cpu": e["cpu_seconds"], "step": e["step"], "tokens": e["tokens_seen"]}
        for e in map(json.loads, progress.read_text().splitlines())
        if e["event"] == "log"
    ]
    return {
        "wall_seconds": wall,
        "steady_tokens_per_second": steady_rate(points),
        "steady_tokens_per_cpu_second": steady_rate(points, "cpu"),
        "service_process_cpu_seconds": service_cpu,
        "worker_cpu_seconds": points[-1]["cpu"],
        "load_average": os.getloadavg()[0],
        "watchjob_mean_tokens_per_second": statistics.mean(reported) if reported else 0.0,
        "steps": points[-1]["step"],
    }


def run_pair(work: Path, base_model: Path, dataset_uri: str, tag: str, concurrent: bool) -> dict[str, Any]:
    """Two jobs through one service, at once (`concurrent`) or one after the other; one thread each."""
    from services.common.inprocess import serve_in_thread
    from services.common.settings import ServerSettings
    from services.trainer.client import TrainerClient
    from services.trainer.main import build
    from services.trainer.schema import JobState
    from services.trainer.settings import TrainerSettings

    settings = TrainerSettings(
        state_dir=work / f"pair-{tag}",
        max_concurrent_jobs=2 if concurrent else 1,
        device="cpu",
        cpu_threads=2 * THREADS,
        torch_threads=THREADS,
    )
    # The bench's datasets and outputs live in its work directory: the trainer may use it (its file roots).
    server_settings = ServerSettings(port=0, metrics_port=0, file_roots=[work])
    server = serve_in_thread(partial(build, settings=settings), server_settings)
    with server as address, TrainerClient(address) as client:
        started = time.monotonic()
        jobs = [
            client.submit(
                base_model=str(base_model),
                dataset_uri=dataset_uri,
                output_uri=(work / f"pair-out-{tag}-{i}").as_uri(),
                idempotency_key=f"pair-{tag}-{i}",
                training=RECIPE,
            )
            for i in range(2)
        ]
        finals = [client.wait(job.id) for job in jobs]
        wall = time.monotonic() - started
    failed = [f.error for f in finals if f.state is not JobState.SUCCEEDED]
    if failed:
        raise RuntimeError(f"bench job failed: {failed}")
    spans, cpu = [], 0.0
    for job in jobs:
        progress = settings.jobs_dir / job.id / "work" / "progress.jsonl"
        events = [json.loads(line) for line in progress.read_text().splitlines()]
        spans.append((min(e["time"] for e in events), max(e["time"] for e in events)))
        cpu += max(e.get("cpu_seconds", 0.0) for e in events)  # the worker's CPU time up to its last log
    overlap = max(0.0, min(b for _, b in spans) - max(a for a, _ in spans))
    return {
        "wall_seconds": wall,
        "training_overlap_seconds": overlap,
        # CPU cores the workers kept busy on average: ~2 at once and ~1 in sequence on an idle machine;
        # less when other tenants take them (which is what moves the wall-time ratio off 0.5).
        "worker_cores_used": cpu / wall,
        "load_average": os.getloadavg()[0],
    }


def measure_concurrency(work: Path, base_model: Path, dataset_uri: str, reps: int) -> dict[str, Any]:
    sequential, concurrent = [], []
    for rep in range(reps):
        for together in (rep % 2 == 0, rep % 2 == 1):  # alternate which goes first
            runs = concurrent if together else sequential
            runs.append(run_pair(work, base_model, dataset_uri, f"{'c' if together else 's'}{rep}", together))
            print(f"{'concurrent' if together else 'sequential'} #{rep}: {runs[-1]}", flush=True)
    seq, con = [r["wall_seconds"] for r in sequential], [r["wall_seconds"] for r in concurrent]
    return {
        "goal": "2 jobs at once / one after the other, wall time <= 0.6",
        "sequential_wall_seconds": round(statistics.mean(seq), 2),
        "concurrent_wall_seconds": round(statistics.mean(con), 2),
        "ratio": round(statistics.mean(con) / statistics.mean(seq), 3),
        "paired_ratios": [round(c / s, 3) for c, s in zip(con, seq, strict=True)],
        "worker_cores_used": {
            "sequential": round(statistics.mean(r["worker_cores_used"] for r in sequential), 2),
            "concurrent": round(statistics.mean(r["worker_cores_used"] for r in concurrent), 2),
        },
        "runs": {"sequential": sequential, "concurrent": concurrent},
        "setup": {
            "jobs": 2,
            "threads_per_job": THREADS,
            "recipe": RECIPE,
            "reps_each": reps,
            "machine": f"{os.cpu_count()} CPUs shared with other jobs; load average "
            f"{min(r['load_average'] for r in sequential + concurrent):.1f}-"
            f"{max(r['load_average'] for r in sequential + concurrent):.1f}",
        },
    }


def main(out_dir: Path) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from services.common.store import open_store
    from services.common.tiny_model import build_tiny_llama

    shared = Path(os.environ.get("POLYGLOT_SHARED_DIR", REPO_ROOT.parent / "shared"))
    reps = int(os.environ.get("POLYGLOT_BENCH_TRAINER_REPS", "3"))
    parts = set(os.environ.get("POLYGLOT_BENCH_TRAINER_PARTS", "throughput,concurrent").split(","))
    previous_path = out_dir / f"{NAME}.json"
    previous = json.loads(previous_path.read_text()) if previous_path.exists() else {}
    concurrency = previous.get("concurrent")
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        work = Path(tmp)
        base_model = build_tiny_llama(work / "tiny-llama", shared / "models" / "tokenizers" / "llama2")
        store = open_store(str(work / "store"))
        dataset_uri = store.put_bytes("datasets/oasst/train.jsonl", _oasst_jsonl(shared, 256)).uri
        dataset_path = work / "store" / "datasets" / "oasst" / "train.jsonl"
        plain, service = [], []
        for rep in range(reps if "throughput" in parts else 0):
            plain.append(run_plain(work, base_model, dataset_path, rep))
            print(f"plain   #{rep}: {plain[-1]}", flush=True)
            service.append(run_service(work, base_model, dataset_uri, rep))
            print(f"service #{rep}: {service[-1]}", flush=True)
        if "concurrent" in parts:
            concurrency = measure_concurrency(work, base_model, dataset_uri, reps)
    if "throughput" not in parts:  # keep the last throughput results; refresh the concurrency ones
        summary = {**previous, "concurrent": concurrency}
        previous_path.write_text(json.dumps(summary, indent=2) + "\n")
        whole = "steady_tokens_per_cpu_second" in summary
        text = _markdown(summary) if whole else "\n".join(_concurrency_markdown(concurrency))
        (out_dir / f"{NAME}.md").write_text(text)
        return summary

    def compare(key: str, service_over_plain: bool = True) -> dict[str, Any]:
        p, q = [r[key] for r in plain], [r[key] for r in service]
        pairs = [(b / a if service_over_plain else a / b) for a, b in zip(p, q, strict=True)]
        ratio = statistics.mean(q) / statistics.mean(p)
        return {
            "plain": round(statistics.mean(p), 2),
            "service": round(statistics.mean(q), 2),
            "ratio": round(ratio if service_over_plain else 1 / ratio, 3),
            "paired_ratios": [round(x, 3) for x in pairs],
        }

    loads = [r["load_average"] for r in plain + service]
    summary = {
        "name": NAME,
        "goal": "service/plain steady-state tokens/s >= 0.95",
        # Tokens per CPU-second of the training process: what the service changes inside the training loop,
        # without the other tenants' load on this shared machine (which swings wall-clock rates 2-3x).
        "steady_tokens_per_cpu_second": compare("steady_tokens_per_cpu_second"),
        "steady_tokens_per_second": compare("steady_tokens_per_second"),
        "end_to_end_wall_seconds": compare("wall_seconds", service_over_plain=False),  # ratio = plain / service
        "service_process_cpu_seconds_per_job": round(
            statistics.mean(r["service_process_cpu_seconds"] for r in service), 2
        ),
        "worker_cpu_seconds_per_job": round(statistics.mean(r["worker_cpu_seconds"] for r in service), 2),
        "watchjob_mean_tokens_per_second": round(
            statistics.mean(r["watchjob_mean_tokens_per_second"] for r in service), 1
        ),
        "runs": {"plain": plain, "service": service},
        "concurrent": concurrency,
        "setup": {
            "model": "tiny random Llama (hidden 128, 2 layers) + Llama 2 tokenizer",
            "rows": 256,
            "recipe": RECIPE,
            "torch_threads": THREADS,
            "reps_each": reps,
            "order": "alternating plain, service",
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs shared with other jobs; load average "
            f"{min(loads):.1f}-{max(loads):.1f}",
        },
    }
    (out_dir / f"{NAME}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / f"{NAME}.md").write_text(_markdown(summary))
    return summary


def _markdown(s: dict[str, Any]) -> str:
    setup, recipe = s["setup"], s["setup"]["recipe"]
    cpu, wall, e2e = s["steady_tokens_per_cpu_second"], s["steady_tokens_per_second"], s["end_to_end_wall_seconds"]

    def row(name: str, m: dict[str, Any], what: str) -> str:
        return f"| {name} | {m['plain']} | {m['service']} | **{m['ratio']}** ({what}) | {m['paired_ratios']} |"

    return "\n".join(
        [
            "# Trainer: service vs plain TRL",
            "",
            f"{setup['model']}; {setup['rows']} OASST rows; {recipe['max_steps']} steps of batch "
            f"{recipe['effective_batch_size']} x {recipe['max_length']} tokens; LoRA r {recipe['lora_r']}; "
            f"{setup['torch_threads']} torch threads; {setup['reps_each']} runs each ({setup['order']}); "
            f"{setup['machine']}.",
            "",
            "| | plain TRL script | through the service | ratio | per pair |",
            "|---|---|---|---|---|",
            row("steady-state tokens per CPU-second (training loop)", cpu, "service/plain; goal >= 0.95"),
            row("steady-state tokens per wall-second (training loop)", wall, "service/plain"),
            row("end-to-end wall time (s)", e2e, "plain/service"),
            "",
            f"Steady state runs from step {WARMUP_STEPS} to the last step. Wall-clock rates on this shared",
            "machine swing 2-3x with other tenants' load, so the CPU-time rate (tokens per CPU-second of the",
            "training process) is the like-for-like measure of what the service adds to the training loop;",
            "the wall-clock ratio is reported as measured. End-to-end includes the fixed costs: worker start-up",
            "and imports (both sides are fresh processes) and, on the service side, submit-time validation,",
            "progress polling and uploads of checkpoints, adapter and card to the artifact store.",
            "The service process itself (gRPC server, job manager, client) used "
            f"{s['service_process_cpu_seconds_per_job']} CPU-seconds per job, against "
            f"{s['worker_cpu_seconds_per_job']} in the worker.",
            f"Mean tokens/s as streamed by WatchJob: {s['watchjob_mean_tokens_per_second']}.",
            "",
            *_concurrency_markdown(s.get("concurrent")),
        ]
    )


def _concurrency_markdown(c: dict[str, Any] | None) -> list[str]:
    if not c:
        return []
    return [
        "## Two jobs at once (`max_concurrent_jobs=2`) vs one after the other",
        "",
        f"Same recipe, {c['setup']['threads_per_job']} CPU thread per job, {c['setup']['reps_each']} runs each "
        f"(order alternating); {c['setup']['machine']}.",
        "",
        "| sequential wall (s) | concurrent wall (s) | ratio | per pair |",
        "|---|---|---|---|",
        f"| {c['sequential_wall_seconds']} | {c['concurrent_wall_seconds']} | **{c['ratio']}** "
        f"(concurrent/sequential; goal <= 0.6) | {c['paired_ratios']} |",
        "",
        *(
            [
                f"CPU cores the workers kept busy on average: {c['worker_cores_used']['sequential']} in sequence, "
                f"{c['worker_cores_used']['concurrent']} at once.",
                "",
            ]
            if "worker_cores_used" in c
            else []
        ),
        "Wall time runs from the first SubmitJob to the second job's end. With two free cores the ideal is",
        "0.5 (each job keeps its core); other tenants' load on a shared machine takes cores from the",
        "concurrent pair and pushes the ratio up, so rerun it on a quiet machine for the figure that counts.",
        "",
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "plain":
        plain_main(sys.argv[2])
    else:
        print(json.dumps(main(REPO_ROOT / "bench" / "results"), indent=2))
