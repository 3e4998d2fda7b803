"""`polyglot serve generator` as a real process, configured from the environment, on the tiny Llama."""

from __future__ import annotations

import socket

import pytest

from services.common.local import LocalServices
from services.generator.client import GeneratorClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_generator_process_generates_and_exits_zero_on_sigterm(tiny_llama_dir, tmp_path):
    env = {
        "POLYGLOT_GENERATOR_MODEL": str(tiny_llama_dir),
        "POLYGLOT_GENERATOR_ADAPTER_CACHE_DIR": str(tmp_path / "adapters"),
        "POLYGLOT_GENERATOR_THREADS": "1",
    }
    services = LocalServices(["generator"], ports={"generator": _free_port()}, env=env, log_dir=tmp_path, grace=5)
    services.start()
    try:
        services.wait_healthy(timeout=180)
        with GeneratorClient(services.addresses["generator"]) as client:
            models = client.list_models().models
            assert models[0].name == str(tiny_llama_dir) and models[0].backend == "hf"
            result = client.generate_all(["Hello"], preset="constrained", max_tokens=4, seed=0)[0]
            assert result.error is None and result.completion_tokens > 0
    finally:
        codes = services.stop()
    assert codes == {"generator": 0}, (tmp_path / "generator.log").read_text()[-2000:]
