"""The `hf` backend: transformers + peft on CPU or one GPU, with dynamic batching.

Rows from concurrent requests that arrive within `batch_window_ms` are left-padded into one `generate` call
(or one forward pass for scoring) on the model thread of `BatchWorker`; each row's future is resolved when
that row finishes. LoRA adapters are loaded into one `PeftModel` by name and switched per batch, never
merged, so the base weights stay shared; the base model is served with the adapters disabled.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

from services.common.errors import FailedPrecondition, NotFound
from services.generator.backends.batching import BatchWorker, Job
from services.generator.engine import BASE, Completion, Engine, EngineInfo, GenRow, ScoreRow, TokenScore
from services.generator.settings import GeneratorSettings

log = logging.getLogger("polyglot.generator.hf")


def is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class HFBackend(Engine):
    name = "hf"

    def __init__(self, settings: GeneratorSettings):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.settings = settings
        device = settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        dtype = {
            "auto": torch.float32 if device == "cpu" else torch.bfloat16,
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }[settings.dtype]
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(settings.model)
            # Weights go straight from the checkpoint to the device: no full copy in host memory first.
            model = AutoModelForCausalLM.from_pretrained(settings.model, dtype=dtype, device_map=str(self.device))
        except OSError as exc:
            raise NotFound(f"cannot load model {settings.model!r}: {exc}", field="model") from exc
        self.model = model.eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pad_id = self.tokenizer.pad_token_id
        eos = self.model.generation_config.eos_token_id
        eos = eos if eos is not None else self.tokenizer.eos_token_id
        self.eos_ids = set(eos) if isinstance(eos, list) else {eos}
        max_context = settings.max_context or getattr(self.model.config, "max_position_embeddings", None) or 2048
        self.info = EngineInfo(backend="hf", model=str(settings.model), max_context=int(max_context))
        self.max_batch_tokens = settings.max_batch_tokens
        self._peft = None  # a PeftModel wrapping self.model once the first adapter is loaded
        self._adapters: dict[str, str] = {}
        self.worker = BatchWorker(
            self._run,
            max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            max_span=self.info.max_context,
            window_s=settings.batch_window_ms / 1000,
            is_oom=is_oom,
            name="generator-hf",
        )

    # -- Engine API ---------------------------------------------------------------------------------------

    def submit_generate(self, rows: list[GenRow]) -> list[Future[Completion]]:
        return self.worker.submit(
            [Job("generate", row, row.adapter, len(row.prompt_ids), row.params.max_tokens) for row in rows]
        )

    def submit_score(self, rows: list[ScoreRow]) -> list[Future[TokenScore]]:
        return self.worker.submit(
            [Job("score", row, row.adapter, min(self._score_len(row), self.info.max_context)) for row in rows]
        )

    def load_adapter(self, name: str, path: str) -> None:
        self.worker.call(lambda: self._load(name, path))

    def unload_adapter(self, name: str) -> None:
        self.worker.call(lambda: self._unload(name))

    def close(self) -> None:
        self.worker.close()

    # -- adapters (model thread) ------------------------------------------------------------------------

    def _load(self, name: str, path: str) -> None:
        """Load the adapter at `path` as `name`, all or nothing: PEFT registers the name and wraps the layers
        before it reads the weights, so a load that fails there (an adapter of another base model) is undone,
        or the name would stay half-registered and refuse every later load of it until a restart."""
        from peft import PeftConfig, get_peft_model

        if not (Path(path) / "adapter_config.json").exists():
            raise FailedPrecondition(f"{path} has no adapter_config.json: not a PEFT adapter", field="uri")
        peft = self._peft
        try:
            if peft is None:  # PeftModel.from_pretrained in two steps, to keep the wrapper if the second fails
                config = PeftConfig.from_pretrained(path)
                config.inference_mode = True
                peft = get_peft_model(self.model, config, adapter_name=name)
            peft.load_adapter(path, adapter_name=name, is_trainable=False)
        except BaseException as exc:
            self._roll_back(peft, name)
            if isinstance(exc, (RuntimeError, ValueError, KeyError)):  # shape mismatch: another base model's
                detail = " ".join(str(exc).split("\n")[:2])[:300]  # PEFT lists every mismatched tensor
                message = f"adapter at {path} does not fit this base model: {detail}"
                raise FailedPrecondition(message, field="uri") from exc
            raise
        self._peft = peft
        self._peft.eval()
        self._adapters[name] = path

    def _roll_back(self, peft, name: str) -> None:
        """Remove what a failed load of `name` left in `peft` (None: it failed before wrapping anything)."""
        if peft is None or name not in peft.peft_config:
            return
        if peft is not self._peft or not self._adapters:  # `name` is its only adapter: unwrap the base layers
            self.model = peft.unload()
            self._peft = None
        else:
            peft.delete_adapter(name)
            peft.set_adapter(next(iter(self._adapters)))
        log.warning("rolled back the failed load of adapter %s", name)

    def _unload(self, name: str) -> None:
        if name not in self._adapters:
            return
        del self._adapters[name]
        if not self._adapters:
            # peft cannot delete its last adapter; unwrapping restores the untouched base layers.
            self.model = self._peft.unload()
            self._peft = None
        else:
            self._peft.delete_adapter(name)

    @contextlib.contextmanager
    def _active(self, adapter: str) -> Iterator[object]:
        if adapter == BASE:
            if self._peft is None:
                yield self.model
            else:
                with self._peft.disable_adapter():
                    yield self._peft
            return
        if adapter not in self._adapters:
            raise NotFound(f"adapter {adapter!r} is not loaded", field="adapter")
        self._peft.set_adapter(adapter)
        yield self._peft

    # -- batches (model thread) -------------------------------------------------------------------------

    def _run(self, kind: str, adapter: str, jobs: list[Job]) -> None:
        import torch

        with torch.inference_mode(), self._active(adapter) as model:
            if kind == "generate":
                self._generate(model, jobs)
            else:
                self._score(model, jobs)

    def _left_padded(self, seqs: list[tuple[int, ...] | list[int]]):
        import torch

        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, seq in enumerate(seqs):
            ids[i, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[i, width - len(seq) :] = 1
        return ids.to(self.device), mask.to(self.device), width

    @functools.cached_property
    def _token_table(self):
        """lm-format-enforcer's view of the tokenizer, built on the first structured row (model thread)."""
        from services.generator.backends.hf_structured import TokenTable

        return TokenTable(self.tokenizer, self.eos_ids)

    def _generate(self, model, jobs: list[Job]) -> None:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        from services.generator.backends.hf_decoding import RowSampler, RowStopper
        from services.generator.backends.hf_structured import RowConstraint

        rows: list[GenRow] = [job.row for job in jobs]
        ids, mask, width = self._left_padded([r.prompt_ids for r in rows])
        params = [r.params for r in rows]
        generators = []
        for p in params:
            g = torch.Generator(device=self.device)
            g.manual_seed(p.seed if p.seed is not None else secrets.randbits(63))
            generators.append(g)
        constraints = [RowConstraint(self._token_table, r.structured) if r.structured else None for r in rows]
        sampler = RowSampler(params, width, [width - len(r.prompt_ids) for r in rows], generators, constraints)
        stopper = RowStopper(
            self.tokenizer, [r.prompt_ids for r in rows], params, [j.future for j in jobs], width, self.eos_ids,
            sampler=sampler,
        )
        config = GenerationConfig(
            max_new_tokens=max(p.max_tokens for p in params),
            do_sample=False,  # RowSampler has already drawn; greedy just takes its pick
            num_beams=1,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids),
            bos_token_id=self.tokenizer.bos_token_id,
            use_cache=True,
        )
        sequences = model.generate(
            input_ids=ids,
            attention_mask=mask,
            generation_config=config,
            logits_processor=LogitsProcessorList([sampler]),
            stopping_criteria=StoppingCriteriaList([stopper]),
        )
        stopper.finish_leftovers(sequences)

    def _score_len(self, row: ScoreRow) -> int:
        return len(row.context_ids) + len(row.continuation_ids) - 1

    def _score(self, model, jobs: list[Job]) -> None:
        """lm-eval's HFLM `_loglikelihood_tokens`: input (ctx + cont)[-(max_len + 1):][:-1]; the last
        len(cont) positions predict the continuation. Left padding (with matching position ids) puts every
        row's continuation at the end, so only those positions' logits are computed."""
        import torch

        max_len = self.info.max_context
        rows: list[ScoreRow] = [job.row for job in jobs]
        inputs = [list(r.context_ids + r.continuation_ids)[-(max_len + 1) :][:-1] for r in rows]
        ids, mask, width = self._left_padded(inputs)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        keep = max(len(r.continuation_ids) for r in rows)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # [rows, keep, vocab]
        # Every row's continuation, right-aligned like its logits, copied over once; each row's figures stay
        # on the device until one read-back for the batch.
        targets = torch.zeros((len(rows), keep), dtype=torch.long)
        for i, row in enumerate(rows):
            targets[i, keep - len(row.continuation_ids) :] = torch.tensor(row.continuation_ids, dtype=torch.long)
        targets = targets.to(logprobs.device)
        sums, greedy = [], []
        for i, row in enumerate(rows):
            start = keep - len(row.continuation_ids)
            lp, target = logprobs[i, start:], targets[i, start:]
            sums.append(lp.gather(-1, target.unsqueeze(-1)).squeeze(-1).sum())
            greedy.append((lp.argmax(-1) == target).all())
        sums, greedy = torch.stack(sums).tolist(), torch.stack(greedy).tolist()
        for row, job, logprob, is_greedy in zip(rows, jobs, sums, greedy, strict=True):
            score = TokenScore(logprob=logprob, is_greedy=is_greedy, num_tokens=len(row.continuation_ids))
            job.future.set_result(score)
