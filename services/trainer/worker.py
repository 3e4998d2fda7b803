"""The worker: one process per job attempt, running TRL's SFTTrainer with a PEFT LoRA adapter.

    python -m services.trainer.worker <work_dir>          # reads <work_dir>/task.json
    python -m services.trainer.worker <work_dir> --report-uri s3://bucket/out/_trainer/attempt-1

Running training in its own process means a crash (OOM, a CUDA fault, a SIGKILL) ends the job, never the
service. The worker talks to the service only through files in its work directory:

- `progress.jsonl`: one JSON event per line (`start`, `log`, `checkpoint`, `done`, `error`), appended as
  training goes (the service tails it and streams it out through WatchJob);
- `result.json` (success) or `error.json` (failure), written atomically before exiting.

With `--report-uri` (a worker in a Kubernetes Job of its own, `k8s_launcher.py`) it first fetches
`task.json` from that artifact-store prefix if the work directory lacks it, and mirrors the files above
there (progress every few seconds, the result last), where the service reads them.

It trains on `POLYGLOT_TRAINER_DEVICE` (`cuda`, `cpu`, or `auto` = the GPUs if torch sees any), which the
service sets with the devices it handed this job (`CUDA_VISIBLE_DEVICES`, `OMP_NUM_THREADS`).

Checkpoints go to the artifact store (`<output_uri>/checkpoints/checkpoint-<step>/`), and
`checkpoints/latest.json` is written only after a checkpoint is complete, so a worker killed mid-upload
leaves the previous checkpoint as the latest. A new attempt downloads the latest checkpoint and passes it
to `Trainer.train(resume_from_checkpoint=...)`: optimizer, scheduler, RNG state and step count continue.

Under `accelerate launch` (several GPUs) every rank runs this module; rank 0 alone downloads inputs
(the others wait for it), reports progress, uploads checkpoints and writes the outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from services.common.errors import NotFound
from services.common.store import cached_dir, fetch_dir_cached, open_object, open_store, retrying
from services.common.store.base import ArtifactStore, dumps_json, sha256_file, write_file_atomically
from services.trainer.schema import WorkerTask

CHECKPOINTS = "checkpoints"
LATEST = f"{CHECKPOINTS}/latest.json"


# -- plumbing shared with the service ----------------------------------------------------------------


class EventWriter:
    """Appends progress events to `progress.jsonl`; a no-op on ranks other than 0."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = path
        self.enabled = enabled

    def write(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        line = json.dumps({"event": event, "time": time.time(), **fields}, allow_nan=False, default=str)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()

    def store_retry(self, error: BaseException, attempt: int) -> None:
        """A store operation failed for an outage and will be tried again (`retrying`'s `on_retry`)."""
        self.write("store_retry", attempt=attempt, error=str(error)[:300])


def write_json_atomically(path: Path, obj: Any) -> None:
    write_file_atomically(path, [dumps_json(obj)])


class StoreMirror:
    """Copies the report files of the work directory to an artifact-store prefix: progress every `every`
    seconds while training, everything once more on `close` (progress before the result, so a reader that
    sees the result has every event)."""

    FILES = ("progress.jsonl", "result.json", "error.json")

    def __init__(self, uri: str, work_dir: Path, every: float = 2.0):
        self.store, self.work_dir, self.every = retrying(open_store(uri)), work_dir, every
        self._sizes: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="report-mirror", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def push(self, name: str) -> None:
        path = self.work_dir / name
        if not path.exists() or self._sizes.get(name) == path.stat().st_size:
            return
        size = path.stat().st_size
        self.store.put_file(name, path)
        self._sizes[name] = size

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(Exception):  # a store hiccup: the next round or `close` catches up
                self.push("progress.jsonl")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for name in self.FILES:
            self.push(name)


def start_watchdog(parent_pid: int, interval: float = 1.0) -> None:
    """Exit when the service that started us is gone, so a killed service leaves no orphan training
    (a restarted service resumes the job from its checkpoint instead)."""

    def watch() -> None:
        while True:
            time.sleep(interval)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(70)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def dir_sha256(files: dict[str, str]) -> str:
    """A directory's identity: the hash of its sorted {relative path: sha256} manifest."""
    import hashlib

    return hashlib.sha256(dumps_json(files)).hexdigest()


def upload_dir(store: ArtifactStore, prefix: str, local: Path) -> dict[str, str]:
    infos = store.put_dir(prefix, local)
    return {info.key[len(prefix) + 1 :]: info.sha256 for info in infos}


# -- inputs ------------------------------------------------------------------------------------------


def fetch_dataset(task: WorkerTask, data_dir: Path, download: bool) -> Path:
    expected = task.dataset_sha256
    dest = data_dir / f"{expected or 'dataset'}.jsonl"
    if download and not dest.exists():
        store, key = open_object(task.spec.dataset_uri)
        retrying(store).get_file(key, dest)
        actual, _ = sha256_file(dest)
        if expected and actual != expected:
            dest.unlink()
            raise RuntimeError(f"dataset {task.spec.dataset_uri} changed since the job was submitted")
    return dest


def fetch_base_model(task: WorkerTask, download: bool) -> str:
    ref = task.spec.base_model
    if "://" not in ref:
        return ref  # a local directory or a hub id (resolved from the HF cache when offline)
    store, cache = retrying(open_store(ref)), Path(task.cache_dir) / "base-models"
    # Ranks other than 0 only need the path: rank 0 fetches while they wait.
    return str(fetch_dir_cached(store, "", cache) if download else cached_dir(store, "", cache))


def fetch_checkpoint(task: WorkerTask, store: ArtifactStore, run_dir: Path, download: bool) -> tuple[Path | None, int]:
    """The latest checkpoint of this training (same spec fingerprint) as a local dir, and its step."""
    try:
        latest = store.get_json(LATEST)
    except NotFound:
        return None, 0  # a first attempt, or one killed before its first checkpoint
    if latest.get("fingerprint") != task.fingerprint:
        return None, 0  # another training wrote here; never resume someone else's optimizer state
    step = int(latest["step"])
    local = run_dir / f"checkpoint-{step}"
    if download:
        store.get_dir(latest["prefix"], local)
    return local, step


def restore_final_checkpoint(trainer: Any, checkpoint: Path) -> None:
    """Load a finished training's last checkpoint into `trainer` without training: its LoRA weights into the
    model and its `TrainerState` (step, log history, tokens seen), as `Trainer.train` would have left them."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import TrainerState

    set_peft_model_state_dict(trainer.model, load_file(str(checkpoint / "adapter_model.safetensors")))
    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))


@contextlib.contextmanager
def main_process_first(world: int) -> Iterator[None]:
    if world <= 1:
        yield
        return
    from accelerate import PartialState

    with PartialState().main_process_first():
        yield


# -- callbacks ---------------------------------------------------------------------------------------


def make_callbacks(task: WorkerTask, events: EventWriter, store: ArtifactStore):
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """Step, loss, learning rate, throughput (non-padding tokens/s since the last report) and ETA."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = self.last_t = time.monotonic()
            self.step0 = state.global_step
            self.last_tokens = state.num_input_tokens_seen
            events.write("start", step=state.global_step, total_steps=state.max_steps, attempt=task.attempt)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            now = time.monotonic()
            tokens = state.num_input_tokens_seen
            rate = (tokens - self.last_tokens) / max(now - self.last_t, 1e-9)
            done = max(state.global_step - self.step0, 1)
            eta = (state.max_steps - state.global_step) * (now - self.t0) / done
            self.last_t, self.last_tokens = now, tokens
            events.write(
                "log",
                step=state.global_step,
                total_steps=state.max_steps,
                loss=float(logs["loss"]),
                learning_rate=float(logs.get("learning_rate", 0.0)),
                epoch=float(state.epoch or 0.0),
                tokens_per_second=rate,
                eta_seconds=eta,
                tokens_seen=tokens,
                cpu_seconds=time.process_time(),  # lets benchmarks factor out other processes' load
            )

    class StoreCheckpointCallback(TrainerCallback):
        """Uploads each saved checkpoint, then points `latest.json` at it, then prunes old ones."""

        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            step = state.global_step
            local = Path(args.output_dir) / f"checkpoint-{step}"
            if not local.is_dir():
                return
            prefix = f"{CHECKPOINTS}/checkpoint-{step}"
            files = upload_dir(store, prefix, local)
            store.put_json(
                LATEST,
                {
                    "step": step,
                    "prefix": prefix,
                    "fingerprint": task.fingerprint,
                    "job_id": task.job_id,
                    "files": files,
                },
            )
            prune_checkpoints(store, keep=task.keep_checkpoints, newest=step)
            events.write("checkpoint", step=step, uri=store.uri(prefix), sha256=dir_sha256(files))

    return [ProgressCallback(), StoreCheckpointCallback()]


def prune_checkpoints(store: ArtifactStore, *, keep: int, newest: int) -> None:
    steps: dict[int, list[str]] = {}
    for info in store.list(f"{CHECKPOINTS}/checkpoint-"):
        name = info.key.split("/")[1]
        with contextlib.suppress(ValueError):
            steps.setdefault(int(name.removeprefix("checkpoint-")), []).append(info.key)
    for step in sorted(steps)[: max(len(steps) - max(keep, 1), 0)]:
        if step != newest:
            for key in steps[step]:
                store.delete(key)


# -- the run -----------------------------------------------------------------------------------------


def train(task: WorkerTask, work_dir: Path, events: EventWriter, rank: int, world: int) -> dict[str, Any] | None:
    started = time.monotonic()
    import torch

    if task.torch_threads:
        torch.set_num_threads(task.torch_threads)
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from services.trainer.card import build_card
    from services.trainer.dataset import DatasetManifest, load_texts

    spec, recipe = task.spec, task.spec.recipe
    # Every store operation rides out an outage (POLYGLOT_STORE_RETRY_SECONDS, default 60 s), each retry an event.
    store = retrying(open_store(spec.output_uri), on_retry=events.store_retry)
    run_dir = work_dir / "run"
    with main_process_first(world):
        if rank == 0:
            shutil.rmtree(run_dir, ignore_errors=True)  # the store, not a dead attempt's local files, is the truth
        dataset_path = fetch_dataset(task, work_dir / "data", download=rank == 0)
        base_model = fetch_base_model(task, download=rank == 0)
        resume_dir, resume_step = fetch_checkpoint(task, store, run_dir, download=rank == 0)

    from services.trainer.devices import resolve_kind

    device = resolve_kind(os.environ.get("POLYGLOT_TRAINER_DEVICE", "auto"), torch.cuda.device_count())
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    tokenizer.pad_token = tokenizer.eos_token  # the paper's (QLoRA's) choice; Llama has no pad token
    texts = load_texts(dataset_path)
    args = SFTConfig(
        **recipe.sft_kwargs(
            output_dir=str(run_dir), devices=world, device=device, bf16=bf16, keep_checkpoints=task.keep_checkpoints
        )
    )
    trainer = SFTTrainer(
        model=base_model,
        args=args,
        train_dataset=Dataset.from_dict(recipe.train_columns(texts, tokenizer)),
        processing_class=tokenizer,
        data_collator=recipe.data_collator(tokenizer.pad_token_id),
        peft_config=LoraConfig(**recipe.lora_kwargs()),
        callbacks=make_callbacks(task, events, store),
    )
    if resume_dir is not None and resume_step >= recipe.max_steps:
        # The attempt before was stopped after its last checkpoint, before its outputs were stored. Resumed from
        # there, Trainer.train would take one more optimizer step (step max_steps + 1), so the adapter and the
        # state are restored as that checkpoint saved them instead.
        restore_final_checkpoint(trainer, resume_dir)
        events.write("start", step=resume_step, total_steps=recipe.max_steps, attempt=task.attempt)
    else:
        trainer.train(resume_from_checkpoint=str(resume_dir) if resume_dir else None)

    adapter_dir = work_dir / "adapter"
    shutil.rmtree(adapter_dir, ignore_errors=True)
    trainer.save_model(str(adapter_dir))  # every rank calls it; only rank 0 writes
    if rank != 0:
        return None

    outputs: dict[str, dict[str, str]] = {}
    files = upload_dir(store, "adapter", adapter_dir)
    outputs["adapter"] = {"uri": store.uri("adapter"), "sha256": dir_sha256(files)}
    if recipe.merge_adapter:
        merged_dir = work_dir / "merged"
        shutil.rmtree(merged_dir, ignore_errors=True)
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(str(merged_dir), safe_serialization=True)
        tokenizer.save_pretrained(str(merged_dir))
        files = upload_dir(store, "merged", merged_dir)
        outputs["merged"] = {"uri": store.uri("merged"), "sha256": dir_sha256(files)}
        shutil.rmtree(merged_dir, ignore_errors=True)
    with contextlib.suppress(NotFound):
        latest = store.get_json(LATEST)
        outputs["checkpoint"] = {"uri": store.uri(latest["prefix"]), "sha256": dir_sha256(latest["files"])}

    dataset = DatasetManifest(**task.dataset)
    card = build_card(
        job_id=task.job_id,
        spec=spec,
        fingerprint=task.fingerprint,
        dataset=dataset,
        base_model={"ref": spec.base_model, "resolved": base_model},
        log_history=trainer.state.log_history,
        wall_seconds=task.prior_wall_seconds + (time.monotonic() - started),
        attempts=task.attempt,
        resumed_from_step=resume_step if resume_dir else None,
        devices={"kind": device, "count": world, "bf16": bf16, "torch_threads": torch.get_num_threads()},
        outputs=dict(outputs),
        tokens_seen=int(trainer.state.num_input_tokens_seen),
        global_step=int(trainer.state.global_step),
    )
    info = store.put_json("card.json", card)
    outputs["card"] = {"uri": info.uri, "sha256": info.sha256}
    # Written last: its presence says every output above is complete.
    store.put_json("manifest.json", {"job_id": task.job_id, "fingerprint": task.fingerprint, "outputs": outputs})
    for local in (run_dir, adapter_dir, work_dir / "data"):
        shutil.rmtree(local, ignore_errors=True)  # everything worth keeping is in the store now
    return {
        "outputs": outputs,
        "step": int(trainer.state.global_step),
        "final_loss": card["final_loss"],
        "wall_seconds": time.monotonic() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.trainer.worker")
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--report-uri", help="artifact-store prefix to fetch task.json from and report to")
    args = parser.parse_args(argv)
    work_dir = args.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    with main_process_first(world):
        if args.report_uri and rank == 0 and not (work_dir / "task.json").exists():
            retrying(open_store(args.report_uri)).get_file("task.json", work_dir / "task.json")
    task = WorkerTask.model_validate_json((work_dir / "task.json").read_text(encoding="utf-8"))
    if task.parent_pid > 0:  # a worker in a Kubernetes Job has no parent to outlive
        start_watchdog(task.parent_pid)
    mirror = StoreMirror(args.report_uri, work_dir) if args.report_uri and rank == 0 else None
    if mirror:
        mirror.start()
    events = EventWriter(work_dir / "progress.jsonl", enabled=rank == 0)
    try:
        result = train(task, work_dir, events, rank, world)
    except BaseException as exc:  # noqa: BLE001 - everything becomes the job's error message
        if rank == 0:
            message = f"{type(exc).__name__}: {exc}"
            write_json_atomically(work_dir / "error.json", {"error": message, "traceback": traceback.format_exc()})
            with contextlib.suppress(Exception):
                events.write("error", message=message)
        traceback.print_exc()
        if mirror:
            mirror.close()
        return 1
    if rank == 0 and result is not None:
        write_json_atomically(work_dir / "result.json", result)
        events.write("done", **result)
    if mirror:
        mirror.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
