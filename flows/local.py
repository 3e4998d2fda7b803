"""Run a study on one machine: build tiny models, start the four services on loopback, run the flow.

This is what `polyglot study run CONFIG` (and the README's `make smoke`) does. On a cluster the services
already run and the flow runs as a Prefect deployment; see deploy/k8s/README.md.

Before any work, `flows.preflight` checks the services, the store and the hub. The first SIGINT, SIGTERM
or SIGHUP cancels the run (`flows.cancel`), stops the services it started and Prefect's temporary API, and
raises `Interrupted` within seconds; a second one exits the process at once.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from contextlib import contextmanager
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
        "POLYGLOT_GENERATOR_DTYPE": base.dtype,
        "POLYGLOT_GENERATOR_TENSOR_PARALLEL_SIZE": str(base.tensor_parallel_size),
        "POLYGLOT_GENERATOR_ADAPTER_CACHE_DIR": str((state_dir / "adapters").resolve()),
        "POLYGLOT_TRAINER_STATE_DIR": str((state_dir / "trainer").resolve()),
        "POLYGLOT_JUDGE_LID_ADDRESS": cfg.services.lid,
        "POLYGLOT_JUDGE_GENERATOR_ADDRESS": cfg.services.generator,
        "POLYGLOT_JUDGE_PROVIDER": cfg.judge.provider,
        "POLYGLOT_JUDGE_MODEL": cfg.judge.model,
        "POLYGLOT_JUDGE_STORE_URI": cfg.artifact_store,
        "POLYGLOT_JUDGE_CONCURRENCY": str(cfg.judge.concurrency),
    }
    if (lid_model := cfg.lid.model_file()) is not None:  # else the lid service's embedded lid.176
        env["POLYGLOT_LID_MODEL"] = str(lid_model)
    if cfg.judge.base_url:
        env["POLYGLOT_JUDGE_BASE_URL"] = cfg.judge.base_url
    from flows.protocol.render import judge_env  # seed, temperature, JSON mode; the paper's template directory

    env.update(judge_env(cfg, state_dir))
    if "confusion" in cfg.evaluation.tasks and "POLYGLOT_LID_WORD_LIST" not in os.environ:
        from flows.evals.confusion import word_list

        if words := word_list(cfg.evaluation.tasks["confusion"]):  # WPR needs it; the benchmark ships it
            env["POLYGLOT_LID_WORD_LIST"] = str(words)
    if os.environ.get(cfg.judge.api_key_env):  # the key travels by value only to the child's environment
        env["POLYGLOT_JUDGE_API_KEY"] = os.environ[cfg.judge.api_key_env]
    env.update(local_file_roots(cfg, ref, state_dir))
    return env


def local_file_roots(cfg: StudyConfig, base_model_ref: str, state_dir: Path) -> dict[str, str]:
    """File roots for services that read the user's own local files by URI: the generator the adapters of
    `evaluate_models`, the trainer a `file://` base model. Besides their defaults (their own directory, a local
    store); none are set when nothing lies outside those."""
    from services.common.store import parse_uri

    store = parse_uri(cfg.artifact_store)
    stores = [store.path] if store.scheme == "file" else []
    adapters = [parse_uri(m.adapter) for m in cfg.evaluate_models if m.adapter]
    local = {
        "GENERATOR": ([str((state_dir / "adapters").resolve())], [a.path for a in adapters if a.scheme == "file"]),
        "TRAINER": (
            [str((state_dir / "trainer").resolve())],
            [parse_uri(base_model_ref).path] if base_model_ref.startswith("file:") else [],
        ),
    }
    return {f"POLYGLOT_{service}_FILE_ROOTS": json.dumps([*own, *stores, *extra])
            for service, (own, extra) in local.items() if extra}  # fmt: skip


def up_env(ports: dict[str, int], model: str | None) -> dict[str, str]:
    """`polyglot up`: the judge uses the lid and generator started beside it, and with `--model` it grades
    through that generator (unless POLYGLOT_JUDGE_PROVIDER / _MODEL say otherwise)."""
    env = {f"POLYGLOT_JUDGE_{name.upper()}_ADDRESS": f"127.0.0.1:{ports[name]}" for name in ("lid", "generator")
           if name in ports}  # fmt: skip
    if model:
        env["POLYGLOT_GENERATOR_MODEL"] = model
        if "generator" in ports:
            env["POLYGLOT_JUDGE_PROVIDER"] = os.environ.get("POLYGLOT_JUDGE_PROVIDER", "generator")
            env["POLYGLOT_JUDGE_MODEL"] = os.environ.get("POLYGLOT_JUDGE_MODEL", model)
    return env


class PreflightFailed(Exception):
    """The study cannot start; `problems` are one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class Interrupted(Exception):
    """A signal stopped the run: queued work cancelled, calls ended, our services stopped."""

    def __init__(self, signum: int, kept: str):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.kept = kept


def run_study(
    config_path: Path,
    *,
    start_services: bool = True,
    state_dir: Path = STATE_DIR,
    out_dir: Path | None = None,
    overrides: dict[str, str] | None = None,
    tasks: list[str] | None = None,
    hub_offline: str | None = None,
    log=print,
    flow=None,
    services_used: Sequence[str] | None = None,
) -> dict[str, str]:
    """The whole study (or `flow`, called with the study flow's arguments: `polyglot eval`'s); returns the
    report paths. Services' logs go to `<state_dir>/logs/`. `services_used`: the services `flow` calls (default:
    all), the only ones started or checked.

    Raises PreflightFailed before any work, or Interrupted on SIGINT/SIGTERM/SIGHUP (a second one exits the
    process at once). `hub_offline` is the user's own HF_HUB_OFFLINE, if any.
    """
    from flows import preflight

    cfg = load_config(config_path, overrides, tasks=tasks)
    preflight.set_hub_access(cfg, hub_offline)
    problems = preflight.check(cfg, services=not start_services, hub_offline=hub_offline, only=services_used)
    if problems:
        raise PreflightFailed(problems)
    state_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(prefect_env(state_dir))
    log(f"study {cfg.name}: preparing base models")
    refs = materialise_models(cfg, state_dir)
    if not start_services:
        problems = preflight.config_mismatches(cfg, refs)
        if problems:
            raise PreflightFailed(problems)
    if start_services:
        overrides = {**(overrides or {}), **_own_addresses(cfg, log)}
        cfg = load_config(config_path, overrides, tasks=tasks)
    run = _Run(cfg, log)
    with run.signals():
        if start_services:
            run.start_services(refs, state_dir, services_used)
        from flows.study import study

        out = str(out_dir) if out_dir else None
        return run.in_thread(
            lambda: (flow or study)(str(config_path), base_models=refs, out_dir=out, overrides=overrides, tasks=tasks)
        )


def _own_addresses(cfg: StudyConfig, log) -> dict[str, str]:
    """Ports for the services this run starts, as `services.<name>` overrides: a catalog default that is busy
    moves to a free port; a port the config chose is refused when busy (never someone else's server)."""
    from services.common.catalog import SERVICES
    from services.common.local import choose_ports

    wanted = {name: int(getattr(cfg.services, name).rsplit(":", 1)[1]) for name in SERVICES}
    default = {name for name, spec in SERVICES.items() if getattr(cfg.services, name) == f"127.0.0.1:{spec.port}"}
    return {f"services.{name}": f"127.0.0.1:{port}" for name, port in choose_ports(wanted, default, log).items()}


class _Signal(BaseException):
    """Raised in the main thread by the first stop signal (a BaseException: no `except Exception` eats it)."""


class _Run:
    """One run's services, worker thread and signal handling.

    The flow runs in a worker thread so that the main thread stays free for signals: Prefect's own handling
    of Ctrl-C is to retry its API calls, and Ctrl-C in a terminal also kills its temporary server.
    """

    STOP_GRACE = 3.0  # seconds our services get to drain on an interrupt before SIGKILL

    def __init__(self, cfg: StudyConfig, log):
        self.cfg = cfg
        self.log = log
        self.services = None
        self.thread: threading.Thread | None = None

    @contextmanager
    def signals(self):
        def first(signum, frame):
            for sig in STOP_SIGNALS:
                signal.signal(sig, self._exit_now)
            raise _Signal(signum)

        previous = {sig: signal.signal(sig, first) for sig in STOP_SIGNALS}
        try:
            yield
        except _Signal as exc:
            raise Interrupted(exc.args[0], self._stop()) from None
        finally:
            if self.services is not None:
                self.services.stop(self.STOP_GRACE)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def start_services(self, refs: dict[str, str], state_dir: Path, names: Sequence[str] | None = None) -> None:
        from services.common.local import LocalServices

        logs = state_dir / "logs"
        logs.mkdir(exist_ok=True)
        ports = {
            name: int(address.rsplit(":", 1)[1])
            for name, address in self.cfg.services.model_dump().items()
            if names is None or name in names
        }
        env = service_env(self.cfg, refs, state_dir)
        self.services = LocalServices(list(ports), ports=ports, env=env, log_dir=logs)
        self.log(f"starting services (logs in {logs})")
        self.services.start()
        self.services.wait_healthy(timeout=300)
        self.log("services up:")
        for name, address in self.services.addresses.items():
            self.log(f"  {name} {address} pid {self.services.processes[name].pid}")

    def in_thread(self, fn):
        outcome: dict[str, object] = {}

        def target():
            try:
                outcome["value"] = fn()
            except BaseException as exc:  # handed to the main thread as is
                outcome["error"] = exc

        self.thread = threading.Thread(target=target, name="study-flow", daemon=True)
        self.thread.start()
        while self.thread.is_alive():
            self.thread.join(0.2)  # short joins: the main thread runs signal handlers in between
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def _stop(self) -> str:
        """Cancel queued work, end calls in flight, stop our services and Prefect's temporary API; say what
        the store kept. Bounded: each part has a deadline, so the whole takes well under 10 s."""
        from flows import cancel

        self.log("[bold]interrupted[/]: stopping (press Ctrl-C again to quit at once)")
        logging.getLogger("prefect").setLevel(logging.CRITICAL)  # the cancelled calls' tracebacks are noise
        cancel.request()
        if self.services is not None:
            self.services.stop(self.STOP_GRACE)
        if self.thread is not None:
            self.thread.join(1.0)
        _stop_prefect_server(timeout=1.5)
        return _kept(self.cfg, timeout=1.5)

    def _exit_now(self, signum, frame):
        if self.services is not None:
            self.services.kill()
        _stop_prefect_server(timeout=0)
        os._exit(130)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop_prefect_server(timeout: float) -> None:
    """Prefect's temporary API, if this process started one (its own atexit stop would not run)."""
    from prefect.server.api.server import SubprocessASGIServer

    proc = SubprocessASGIServer().server_process
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def _kept(cfg: StudyConfig, timeout: float) -> str:
    """What the store holds (every step writes its key last, so all of it is complete and reused)."""
    from flows import keys
    from services.common.store import open_store

    counts: dict[str, int] = {}

    def count():
        store = open_store(cfg.artifact_store)
        counts["models"] = sum(o.key.endswith("/model.json") for o in store.list("models/"))
        counts["shards"] = sum(
            o.key.endswith(".jsonl") and not keys.is_shard_samples(o.key) for o in store.list("results/")
        )

    worker = threading.Thread(target=count, daemon=True)
    worker.start()
    worker.join(timeout)
    if len(counts) < 2:
        return f"what is in {cfg.artifact_store} (it did not answer in {timeout:g} s)"
    return f"{counts['models']} tuned models and {counts['shards']} evaluation shards in {cfg.artifact_store}"
