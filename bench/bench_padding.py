"""Trainer: how much of what a forward pass computes is real tokens, padded vs padding-free.

    python -m bench padding        # writes bench/results/padding.{json,md}

The real OASST length distribution (the 953 Guanaco-format conversations in ../shared/data/oasst, the
training text `input + " " + output`), tokenised as TRL does (Llama 2 tokenizer, BOS, EOS appended) and cut
at the recipe's `max_length`; micro-batches of the recipe's per-device batch, drawn as the trainer draws
them (a seeded random permutation per epoch, or transformers' `LengthGroupedSampler` over the effective
batch), laid out by the very collators the trainer uses (`TrainingRecipe.data_collator`). For each layout:

- token share: real tokens / tokens in the batch tensor (what the linear layers, ~all of the FLOPs, compute);
- attention share: the query-key pairs a causal per-sequence attention needs / the pairs computed. Padded
  batches compute rows x longest²; padding-free with FlashAttention's varlen kernel computes each sequence
  alone (share 1); padding-free with SDPA computes the whole concatenated row under a block-diagonal mask.

Token counts, not timings: the figures are the same on any machine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "protos")]
NAME = "padding"
EPOCHS = 10  # passes over the 953 rows, each with its own permutation (as the trainer's epochs are)


def oasst_lengths(shared: Path, max_length: int) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(shared / "models" / "tokenizers" / "llama2"))
    with open(shared / "data" / "oasst" / "qlora_oa_questions.jsonl", encoding="utf-8") as f:
        texts = [f"{r['input']} {r['output']}{tok.eos_token}" for r in map(json.loads, f)]
    return [min(len(ids), max_length) for ids in tok(texts)["input_ids"]]


def micro_batches(lengths: list[int], recipe, grouped: bool) -> list[list[int]]:
    """Indices per forward pass, in the trainer's order, over `EPOCHS` epochs."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    batches = []
    for epoch in range(EPOCHS):
        generator = torch.Generator().manual_seed(recipe.seed + epoch)
        if grouped:
            order = list(LengthGroupedSampler(recipe.effective_batch_size, lengths=lengths, generator=generator))
        else:
            order = torch.randperm(len(lengths), generator=generator).tolist()
        step = recipe.per_device_batch_size
        batches += [order[i : i + step] for i in range(0, len(order) - step + 1, step)]
    return batches


def measure(lengths: list[int], recipe, grouped: bool, padding_free: bool) -> dict[str, Any]:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    layout = recipe.model_copy(update={"padding_free": padding_free})
    collate = layout.data_collator(pad_token_id=2) or DataCollatorForLanguageModeling(pad_token_id=2)
    real = computed = needed_pairs = sdpa_pairs = padded_pairs = 0
    for batch in micro_batches(lengths, recipe, grouped):
        rows = [lengths[i] for i in batch]
        tensor = collate([{"input_ids": list(range(3, 3 + n))} for n in rows])["input_ids"]
        real += sum(rows)
        computed += tensor.numel()
        needed_pairs += sum(n * (n + 1) // 2 for n in rows)
        width = tensor.shape[1]
        padded_pairs += tensor.shape[0] * width * (width + 1) // 2
        sdpa_pairs += width * (width + 1) // 2
    attention = {"padded": needed_pairs / padded_pairs}
    if padding_free:
        attention = {"flash_attention_varlen": 1.0, "sdpa_block_mask": round(needed_pairs / sdpa_pairs, 4)}
    return {
        "token_share": round(real / computed, 4),
        "real_tokens": real,
        "computed_tokens": computed,
        "attention_share": {k: round(v, 4) for k, v in attention.items()},
    }


def main(out_dir: Path) -> dict[str, Any]:
    import os
    import statistics

    from services.trainer.recipe import build_recipe

    shared = Path(os.environ.get("POLYGLOT_SHARED_DIR", REPO.parent / "shared"))
    recipe = build_recipe()
    lengths = oasst_lengths(shared, recipe.max_length)
    layouts = {
        "padded, random order (before)": (False, False),
        "padded, length-grouped": (True, False),
        "padding-free, random order (the default now)": (False, True),
        "padding-free, length-grouped": (True, True),
    }
    summary = {
        "setup": {
            "data": "../shared/data/oasst/qlora_oa_questions.jsonl (953 conversations)",
            "tokenizer": "Llama 2",
            "max_length": recipe.max_length,
            "per_device_batch_size": recipe.per_device_batch_size,
            "effective_batch_size": recipe.effective_batch_size,
            "epochs": EPOCHS,
            "lengths": {
                "mean": round(statistics.mean(lengths), 1),
                "median": statistics.median(lengths),
                "max": max(lengths),
                "cut_at_max_length": sum(n == recipe.max_length for n in lengths),
            },
        },
        "layouts": {name: measure(lengths, recipe, *flags) for name, flags in layouts.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{NAME}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / f"{NAME}.md").write_text(_markdown(summary))
    return summary


def _markdown(s: dict[str, Any]) -> str:
    setup, lengths = s["setup"], s["setup"]["lengths"]
    rows = [
        f"| {name} | **{m['token_share']}** | {m['computed_tokens']:,} | "
        + ", ".join(f"{k} {v}" for k, v in m["attention_share"].items())
        + " |"
        for name, m in s["layouts"].items()
    ]
    return "\n".join(
        [
            "# Trainer: real tokens among computed tokens",
            "",
            f"{setup['data']}, {setup['tokenizer']} tokenizer, cut at {setup['max_length']} tokens "
            f"(mean {lengths['mean']}, median {lengths['median']}, {lengths['cut_at_max_length']} cut); "
            f"micro-batches of {setup['per_device_batch_size']} (effective batch {setup['effective_batch_size']}), "
            f"{setup['epochs']} epochs, laid out by the trainer's own collators.",
            "",
            "| layout | real / computed tokens | computed tokens | attention pairs needed / computed |",
            "|---|---|---|---|",
            *rows,
            "",
            "Padding-free keeps the batches and the loss of padded training (tests/unit/trainer/test_padding.py);",
            "length grouping changes which sequences share an optimizer step, so it stays off by default.",
            "",
        ]
    )


if __name__ == "__main__":
    print(json.dumps(main(REPO / "bench" / "results"), indent=2))
