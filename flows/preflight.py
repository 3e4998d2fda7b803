"""What `polyglot study run` checks before any work, so a missing piece costs seconds, not a retry storm.

Every check runs at once with a short deadline; each problem is one line naming the thing, where it is
and the fix. The checks: each service answers health *for its own gRPC service* (so another kind of server
on the port does not pass), the artifact store answers a cheap listing, and the hub is usable when the config
names a model or dataset by hub id that is not in the local cache.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from flows.config import StudyConfig
from services.common.catalog import SERVICES
from services.common.client import wait_for_health
from services.common.config.types import looks_like_path
from services.common.errors import FailedPrecondition, Unavailable

DEADLINE = 4.0  # seconds for each check; they run in parallel


def check(
    cfg: StudyConfig,
    *,
    services: bool,
    hub_offline: str | None,
    timeout: float = DEADLINE,
    only: Sequence[str] | None = None,
) -> list[str]:
    """Problems that stop the study before it starts (empty when it can run). `services`: check the config's
    running services (else the caller starts its own), or `only` those the flow uses; `hub_offline`: the user's
    own HF_HUB_OFFLINE.

    Files the protocol needs on this machine (the paper's sources, the LID model) are checked first: when any
    is missing that is the one problem reported, since nothing else is worth checking until it is fetched."""
    missing = protocol_files(cfg)
    if missing:
        return [missing]
    pool = ThreadPoolExecutor(max_workers=len(SERVICES) + 2)
    try:
        futures = {
            f"{name} at {getattr(cfg.services, name)}": pool.submit(_service, cfg, name, timeout)
            for name in ((only or SERVICES) if services else ())
        }
        futures[f"artifact store {cfg.artifact_store}"] = pool.submit(_store, cfg)
        futures["hub"] = pool.submit(_hub, cfg, _truthy(hub_offline))
        wait(futures.values(), timeout=timeout + 1)  # one deadline for all
        problems = []
        for what, future in futures.items():
            problem = future.result() if future.done() else f"{what}: no answer in {timeout:g} s"
            if problem:
                problems.append(problem)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a stuck check is not waited for
    return problems


def protocol_files(cfg: StudyConfig) -> str | None:
    """One message naming every local file the config's protocol needs and lacks, and the commands that fetch
    them; None when all are there. The paper's sources: `flows.protocol.sources.require_paper_sources`; the
    LID model: `cfg.lid`."""
    from flows.protocol.sources import require_paper_sources

    lines = []
    try:
        require_paper_sources(cfg)
    except FailedPrecondition as exc:  # missing, unpinned or changed files: each names the fetch command
        lines.append(exc.message)
    if (lid := cfg.lid.missing_model()) is not None:
        lines.append(lid)
    if not lines:
        return None
    return f"protocol {cfg.protocol.profile!r} needs files this machine lacks: " + "; ".join(lines)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _service(cfg: StudyConfig, name: str, timeout: float) -> str | None:
    address = getattr(cfg.services, name)
    try:
        wait_for_health(address, timeout, service=SERVICES[name].grpc_service)
    except Unavailable as exc:
        port = address.rsplit(":", 1)[-1]
        return (
            f"{name} at {address}: {exc.message.split(': ', 1)[-1]}; start it (`polyglot serve {name} --port {port}`),"
            f" set services.{name} to where it runs, or drop --no-services"
        )
    return None


def _store(cfg: StudyConfig) -> str | None:
    from services.common.store import open_store

    try:
        next(iter(open_store(cfg.artifact_store).list("")), None)
    except Exception as exc:  # any failure here means the study could not store a thing
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"artifact store {cfg.artifact_store}: {first}; check its endpoint and credentials (POLYGLOT_S3_*)"
    return None


def hub_ids(cfg: StudyConfig) -> list[str]:
    """Models and datasets the config names by hub id (paths and local files are not)."""
    ids = [m.model for m in cfg.base_models if m.model and not looks_like_path(m.model) and not Path(m.model).exists()]
    source = cfg.data.conversations.source
    if not looks_like_path(source) and not Path(source).exists():
        ids.append(source)
    return ids


def _hub(cfg: StudyConfig, offline_by_user: bool) -> str | None:
    missing = [i for i in hub_ids(cfg) if not _cached(i)]
    if not missing:
        return None
    if offline_by_user:
        return f"hub: the config needs {', '.join(missing)} from the hub, but HF_HUB_OFFLINE=1 is set; unset it"
    return _reach_hub(missing)


def _cached(hub_id: str) -> bool:
    from huggingface_hub.constants import HF_HUB_CACHE

    folder = hub_id.replace("/", "--")
    return any((Path(HF_HUB_CACHE) / f"{kind}--{folder}").is_dir() for kind in ("models", "datasets"))


def _reach_hub(ids: list[str]) -> str | None:
    import httpx
    from huggingface_hub.constants import ENDPOINT

    try:
        httpx.head(ENDPOINT, timeout=DEADLINE - 1, follow_redirects=True)
    except httpx.HTTPError as exc:
        return f"hub: {ENDPOINT} is unreachable ({type(exc).__name__}) and {', '.join(ids)} are not cached"
    return None


def config_mismatches(cfg: StudyConfig, refs: dict[str, str]) -> list[str]:
    """Where running services were started with other settings than the config's (base model, backend...).
    `refs`: what each base model loads from (`flows.local.materialise_models`)."""
    from flows.clients import Clients
    from flows.preflight_config import service_mismatches

    clients = Clients.connect(cfg)
    try:
        return service_mismatches(cfg, clients, refs)
    finally:
        clients.close()


def set_hub_access(cfg: StudyConfig, user_value: str | None) -> None:
    """Offline unless the config needs the hub and the user did not say offline; the services inherit it."""
    if hub_ids(cfg) and user_value is None:
        os.environ.pop("HF_HUB_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = user_value if user_value is not None else "1"
