"""lm-evaluation-harness model `polyglot-grpc`: run any lm-eval task against a Polyglot-served model.

    import services.generator.lm_eval_adapter  # registers the model name
    lm_eval.simple_evaluate(model="polyglot-grpc",
                            model_args="address=127.0.0.1:50052,adapter=s3://artifacts/models/x/adapter",
                            tasks=["xnli_de"])

`loglikelihood` requests go to `Score`, which tokenises exactly as lm-eval's HF model does (so scores
match `--model hf` on the same weights); `generate_until` requests go to `Generate` with greedy decoding
unless the task asks for sampling. Requires the `lm-eval` extra. A generator with authentication on is
reached with the process's POLYGLOT_TLS_CA, POLYGLOT_TLS_CLIENT_CERT/_KEY and POLYGLOT_TOKEN (docs/security.md).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import lm_eval.models  # noqa: F401  (lm-eval loads its own models only into an empty registry: load them first)
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from services.common.catalog import SERVICES
from services.common.errors import ItemError
from services.generator.client import GeneratorClient

DEFAULT_MAX_GEN_TOKS = 256


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


def _check(error: ItemError | None, what: str, index: int) -> None:
    if error is not None:
        field = f" ({error.field})" if error.field else ""
        raise RuntimeError(f"polyglot-grpc: {what} request {index} failed{field}: {error.message}")


@register_model("polyglot-grpc")
class PolyglotGrpcLM(LM):
    def __init__(
        self,
        address: str = f"127.0.0.1:{SERVICES['generator'].port}",
        adapter: str = "",
        batch_size: int | str = 64,
        max_gen_toks: int = DEFAULT_MAX_GEN_TOKS,
        seed: int = 0,
        timeout: float = 3600.0,
        **_ignored: Any,  # lm-eval passes device/max_batch_size to every model
    ):
        super().__init__()
        self.address = address
        self.adapter = adapter
        self.batch_size = int(batch_size) if str(batch_size).isdigit() else 64
        self.max_gen_toks = int(max_gen_toks)
        self.seed = int(seed)
        self.client = GeneratorClient(address, timeout=float(timeout))

    # -- loglikelihood: Score ------------------------------------------------------------------------------

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [tuple(req.args) for req in requests]
        out: list[tuple[float, bool]] = []
        with tqdm(total=len(pairs), disable=disable_tqdm, desc="polyglot-grpc loglikelihood") as bar:
            for start, chunk in _chunks(pairs, self.batch_size):
                for result in self.client.score(chunk, adapter=self.adapter):
                    _check(result.error, "loglikelihood", start + result.index)
                    out.append((result.logprob, result.is_greedy))
                bar.update(len(chunk))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError(
            "polyglot-grpc does not implement loglikelihood_rolling (perplexity tasks such as wikitext): "
            "the generator scores (context, continuation) pairs and generates; use lm-eval's `hf` model "
            "for perplexity."
        )

    # -- generate_until: Generate --------------------------------------------------------------------------

    def _sampling(self, gen_kwargs: dict[str, Any]) -> dict[str, Any]:
        until = gen_kwargs.get("until") or []
        if isinstance(until, str):
            until = [until]
        # As lm-eval's HF model: greedy unless the task asks for sampling.
        do_sample = bool(gen_kwargs.get("do_sample", False))
        sampling: dict[str, Any] = {
            "max_tokens": int(gen_kwargs.get("max_gen_toks", self.max_gen_toks)),
            "temperature": float(gen_kwargs.get("temperature", 1.0)) if do_sample else 0.0,
            "seed": self.seed,
            "stop": [s for s in until if s],
        }
        if "top_p" in gen_kwargs and gen_kwargs["top_p"] is not None:
            sampling["top_p"] = float(gen_kwargs["top_p"])
        if "top_k" in gen_kwargs and gen_kwargs["top_k"] is not None:
            sampling["top_k"] = int(gen_kwargs["top_k"])
        return sampling

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        groups: dict[str, list[int]] = defaultdict(list)
        sampling_of: dict[str, dict[str, Any]] = {}
        for i, req in enumerate(requests):
            sampling = self._sampling(dict(req.args[1]))
            key = repr(sorted(sampling.items()))
            groups[key].append(i)
            sampling_of[key] = sampling
        out: list[str] = [""] * len(requests)
        with tqdm(total=len(requests), disable=disable_tqdm, desc="polyglot-grpc generate_until") as bar:
            for key, indices in groups.items():
                for _, chunk in _chunks(indices, self.batch_size):
                    prompts = [requests[i].args[0] for i in chunk]
                    for result in self.client.generate(prompts, adapter=self.adapter, **sampling_of[key]):
                        _check(result.error, "generate_until", chunk[result.index])
                        out[chunk[result.index]] = result.text
                    bar.update(len(chunk))
        return out
