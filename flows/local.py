"""Run a study on one machine: build tiny models, start the four services on loopback, run the flow.

This is what `polyglot study run CONFIG` (and the README's `make smoke`) does. On a cluster the services
already run and the flow runs as a Prefect deployment; see deploy/k8s/README.md.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

from flows.config import StudyConfig, config_hash, load_config

STATE_DIR = Path(".polyglot")


def prefect_env(state_dir: Path = STATE_DIR) -> dict[str, str]:
    """Prefect with its temporary local API, analytics off, and patience for a slow first start."""
    return {
        "PREFECT_HOME": str((state_dir / "prefect").resolve()),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "INFO"),
    }


def materialise_models(cfg: StudyConfig, state_dir: Path = STATE_DIR) -> dict[str, str]:
    """What each base model loads from: its hub id or path, or a tiny random Llama built here once."""
    from services.common.tiny_model import build_tiny_llama

    refs = {}
    for model in cfg.base_models:
        if model.model:
            refs[model.name] = str(model.model)
            continue
        spec = model.tiny_random
        target = state_dir / "models" / f"{model.name}-{config_hash(spec.model_dump(mode='json'))[:12]}"
        build_tiny_llama(target, spec.tokenizer, seed=spec.seed, **spec.llama_config)
        refs[model.name] = str(target.resolve())
    return refs


def service_env(cfg: StudyConfig, refs: dict[str, str], state_dir: Path) -> dict[str, str]:
    """Settings of the local service processes, all through their POLYGLOT_<SERVICE>_* variables."""
    if len(refs) != 1:
        raise ValueError("a local run serves one base model; run one study per base model or use a cluster")
    ((name, ref),) = refs.items()
    base = cfg.base_model(name)
    env = {
        "POLYGLOT_STORE_URI": cfg.artifact_store,
        "POLYGLOT_GENERATOR_MODEL": ref,
        "POLYGLOT_GENERATOR_BACKEND": base.backend,
        "POLYGLOT_GENERATOR_ADAPTER_CACHE_DIR": str((state_dir / "adapters").resolve()),
        "POLYGLOT_TRAINER_STATE_DIR": str((state_dir / "trainer").resolve()),
        "POLYGLOT_JUDGE_LID_ADDRESS": cfg.services.lid,
        "POLYGLOT_JUDGE_GENERATOR_ADDRESS": cfg.services.generator,
        "POLYGLOT_JUDGE_PROVIDER": cfg.judge.provider,
        "POLYGLOT_JUDGE_MODEL": cfg.judge.model,
        "POLYGLOT_JUDGE_STORE_URI": cfg.artifact_store,
    }
    if cfg.judge.base_url:
        env["POLYGLOT_JUDGE_BASE_URL"] = cfg.judge.base_url
    return env


def run_study(
    config_path: Path,
    *,
    start_services: bool = True,
    state_dir: Path = STATE_DIR,
    out_dir: Path | None = None,
    overrides: dict[str, str] | None = None,
    log=print,
) -> dict[str, str]:
    """The whole study; returns the report paths. Services' logs go to `<state_dir>/logs/`."""
    from services.common.catalog import SERVICES
    from services.common.local import LocalServices

    cfg = load_config(config_path, overrides)
    state_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(prefect_env(state_dir))
    log(f"study {cfg.name}: preparing base models")
    refs = materialise_models(cfg, state_dir)
    with ExitStack() as stack:
        if start_services:
            logs = state_dir / "logs"
            logs.mkdir(exist_ok=True)
            ports = {name: int(getattr(cfg.services, name).rsplit(":", 1)[1]) for name in SERVICES}
            services = stack.enter_context(
                LocalServices(list(ports), ports=ports, env=service_env(cfg, refs, state_dir), log_dir=logs)
            )
            log(f"starting services (logs in {logs})")
            services.wait_healthy(timeout=300)
        from flows.study import study

        return study(str(config_path), base_models=refs, out_dir=str(out_dir) if out_dir else None, overrides=overrides)
