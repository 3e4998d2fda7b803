"""Preflight against a real generator on loopback: the config's base model and backend must be what it serves."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from flows.config import parse_config
from flows.preflight_config import service_mismatches
from services.generator.client import GeneratorClient


def study(model: str, backend: str, address: str):
    return parse_config(
        f"name: pre\nservices: {{generator: '{address}'}}\n"
        f"base_models: [{{name: m, model: '{model}', backend: {backend}}}]\n"
        "evaluation: {tasks: {xnli: }}\n"
    )


@pytest.fixture
def clients(generator_client):
    return SimpleNamespace(generator=generator_client)


def test_a_generator_serving_the_configs_model_passes(generator_service, clients):
    cfg = study(str(generator_service.model_dir), generator_service.backend, generator_service.address)
    assert service_mismatches(cfg, clients) == []


def test_another_base_model_is_named_with_both_models(generator_service, clients, tmp_path):
    other = tmp_path / "llama-2-7b"
    cfg = study(str(other), generator_service.backend, generator_service.address)
    (problem,) = service_mismatches(cfg, clients)
    assert str(other) in problem and str(generator_service.model_dir) in problem
    assert f"--model {other}" in problem
    # A tiny random model is compared with the directory it was materialised into.
    assert service_mismatches(cfg, clients, refs={"m": str(generator_service.model_dir)}) == []


def test_another_backend_is_named(generator_service, clients):
    wrong = "vllm" if generator_service.backend == "hf" else "hf"
    cfg = study(str(generator_service.model_dir), wrong, generator_service.address)
    (problem,) = service_mismatches(cfg, clients)
    assert f"backend is {wrong}" in problem and f"runs {generator_service.backend}" in problem


def test_an_unreachable_generator_is_one_problem():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    with GeneratorClient(address, timeout=2, retries=1) as client:
        (problem,) = service_mismatches(study("org/model", "hf", address), SimpleNamespace(generator=client))
    assert "cannot list its models" in problem and address in problem


@pytest.mark.parametrize(("judge_model", "problems"), [("m", 1), ("base", 0)])
def test_the_generator_judge_must_name_a_model_the_generator_serves(generator_service, clients, judge_model, problems):
    # The config's own name for its base model ("m") is not a name the generator knows.
    cfg = study(str(generator_service.model_dir), generator_service.backend, generator_service.address)
    cfg = cfg.model_copy(update={"judge": cfg.judge.model_copy(update={"provider": "generator", "model": judge_model})})
    found = service_mismatches(cfg, clients)
    assert len(found) == problems
    assert all("judge.model 'm'" in line and "judge.model: base" in line for line in found)
