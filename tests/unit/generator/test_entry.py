"""The process entry and backend registry: no model still serves, vLLM is never imported here."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from services.common.errors import FailedPrecondition
from services.common.presets import SamplingParams
from services.generator.backends import BACKENDS
from services.generator.factory import create_generator
from services.generator.settings import GeneratorSettings


def test_backends_are_registered_lazily_and_vllm_module_imports_without_vllm():
    assert {"hf", "vllm"} <= set(BACKENDS.names())
    code = (
        "import sys; from services.generator.backends import BACKENDS; cls = BACKENDS.get('vllm'); "
        "assert cls.__name__ == 'VLLMBackend'; assert 'vllm' not in sys.modules, 'vllm was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_a_model_the_generator_answers_failed_precondition():
    generator = create_generator(GeneratorSettings(model=None))
    assert generator.list_models() == []

    async def generate():
        async for _ in generator.generate(["Hi"], SamplingParams()):
            pass

    with pytest.raises(FailedPrecondition) as err:
        asyncio.run(generate())
    assert err.value.field == "model"


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("POLYGLOT_GENERATOR_BACKEND", "vllm")
    monkeypatch.setenv("POLYGLOT_GENERATOR_MAX_LOADED_ADAPTERS", "7")
    settings = GeneratorSettings()
    assert (settings.backend, settings.max_loaded_adapters) == ("vllm", 7)
    assert GeneratorSettings(backend="hf").backend == "hf"  # CLI options override the environment


def test_bad_cli_option_exits_2_naming_it():
    from flows.cli import app

    result = CliRunner().invoke(app, ["serve", "generator", "--backend", "tgi"])
    assert result.exit_code == 2
    assert "backend" in result.output
