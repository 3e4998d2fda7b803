"""Row 2: no authentication anywhere. Server TLS existed but no client could use it, pods served plaintext on
0.0.0.0, and any caller could start or cancel jobs, load adapters, read usage. Reproduced before the fix:
a call with no credentials reached every method, and a service bound to 0.0.0.0 with no auth started.

Remedy (services/common/auth.py, credentials.py, interceptor.py, server.py; client.py's channels): bearer
tokens (one file per identity) and mutual TLS in the shared runtime, per-method rules (only `study` may
submit or cancel jobs), every client presenting the process's POLYGLOT_TLS_* and POLYGLOT_TOKEN; health
stays open; a non-loopback bind without auth refuses to start unless `--insecure`.
"""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from polyglot.v1 import generator_pb2_grpc, judge_pb2_grpc, lid_pb2_grpc, trainer_pb2_grpc

from services.common import credentials
from services.common.catalog import SERVICES
from services.common.client import wait_for_health
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    PolyglotError,
    Unauthenticated,
)
from services.common.inprocess import serve_in_thread
from services.common.local import free_port
from services.common.server import Registration, ServiceRuntime
from services.common.settings import ServerSettings
from services.lid.client import LidClient
from services.trainer.client import TrainerClient
from services.trainer.jobs import JobManager
from services.trainer.servicer import TrainerServicer
from services.trainer.settings import TrainerSettings
from tests.fixtures.tls import Pki, token_dir

GENERATED = {
    "lid": lid_pb2_grpc.add_LidServiceServicer_to_server,
    "generator": generator_pb2_grpc.add_GeneratorServiceServicer_to_server,
    "judge": judge_pb2_grpc.add_JudgeServiceServicer_to_server,
}
BASES = {"lid": lid_pb2_grpc.LidServiceServicer, "generator": generator_pb2_grpc.GeneratorServiceServicer,
         "judge": judge_pb2_grpc.JudgeServiceServicer}  # fmt: skip


@pytest.fixture
def client_env(monkeypatch):
    """Sets this process's client credentials (read once, so the cache is cleared around each test)."""

    def use(**values):
        for name in ("TLS_CA", "TLS_CLIENT_CERT", "TLS_CLIENT_KEY", "TOKEN", "TOKEN_FILE"):
            monkeypatch.delenv(f"POLYGLOT_{name}", raising=False)
        for name, value in values.items():
            monkeypatch.setenv(f"POLYGLOT_{name.upper()}", str(value))
        credentials.client_credentials.cache_clear()

    yield use
    credentials.client_credentials.cache_clear()


@pytest.fixture
def secured(tmp_path):
    """Every service's methods behind mTLS + tokens: the real trainer, the others' generated servicers
    (the gate runs before any servicer code, so their methods stand for the real ones)."""
    pki = Pki(tmp_path / "pki")
    tokens = token_dir(tmp_path / "tokens", "study", "judge")
    cert, key = pki.issue("server", server=True)
    probes = free_port()
    settings = ServerSettings(port=0, metrics_port=0, tls_cert=cert, tls_key=key, tls_client_ca=pki.ca,
                              callers=tmp_path / "tokens", health_port=probes)  # fmt: skip

    async def build(_settings):
        manager = JobManager(TrainerSettings(state_dir=tmp_path / "trainer"))
        await manager.start()
        trainer = Registration(TrainerServicer(manager), trainer_pb2_grpc.add_TrainerServiceServicer_to_server,
                               SERVICES["trainer"].grpc_service)  # fmt: skip
        return [trainer] + [Registration(BASES[n](), GENERATED[n], SERVICES[n].grpc_service) for n in GENERATED]

    with serve_in_thread(build, settings) as address:
        yield address, pki, tokens, probes


def _methods() -> list[str]:
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    return [f"/{spec.grpc_service}/{m.name}" for spec in SERVICES.values()
            for m in pool.FindServiceByName(spec.grpc_service).methods]  # fmt: skip


def test_no_token_is_unauthenticated_on_every_method_but_health(secured):
    address, pki, _, probes = secured
    cert, key = pki.issue("nobody-ca-signed")  # a stranger's certificate from another CA would fail the handshake
    port = address.rsplit(":", 1)[1]
    tls = grpc.ssl_channel_credentials(pki.ca.read_bytes())
    # TLS but no client certificate: the handshake itself is refused, so no method is reachable.
    with grpc.secure_channel(f"localhost:{port}", tls) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    # An unknown token on a verified connection: every Polyglot method says UNAUTHENTICATED; health answers.
    creds = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(pki.ca.read_bytes(), key.read_bytes(), cert.read_bytes()),
        grpc.access_token_call_credentials("not-a-token-anyone-has"),
    )
    with grpc.secure_channel(f"localhost:{port}", creds) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        codes = {}
        for method in _methods():
            try:  # the gate answers before any request is read, whatever the method's streaming
                channel.unary_unary(method)(b"", timeout=5)
                codes[method] = "OK"
            except grpc.RpcError as exc:
                codes[method] = exc.code().name
    assert len(codes) == 18 and set(codes.values()) == {"UNAUTHENTICATED"}, codes
    # Probes that cannot speak TLS (kubelet's) get health, and nothing else, on the plaintext health port.
    with grpc.insecure_channel(f"127.0.0.1:{probes}") as plain:
        reply = health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as other:
            plain.unary_unary("/polyglot.v1.TrainerService/ListJobs")(b"", timeout=5)
        assert other.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_clients_present_the_process_credentials_and_rules_hold_per_identity(secured, client_env):
    address, pki, tokens, _ = secured
    port = address.rsplit(":", 1)[1]
    target = f"localhost:{port}"
    study_cert, study_key = pki.issue("study")
    judge_cert, judge_key = pki.issue("judge")

    # mTLS only, no token: the client certificate's name is the identity.
    client_env(tls_ca=pki.ca, tls_client_cert=judge_cert, tls_client_key=judge_key)
    wait_for_health(target, timeout=10)  # health through the same credentials
    with TrainerClient(target, timeout=10, retries=1) as trainer:
        assert trainer.list() == []  # any authenticated identity may list
        with pytest.raises(PermissionDenied, match="'judge' may not call SubmitJob"):
            trainer.submit(base_model="x", dataset_uri="file:///nowhere", output_uri="file:///nowhere")
    # The judge's token over the study's certificate: the token names the caller, and it is still denied.
    client_env(tls_ca=pki.ca, tls_client_cert=study_cert, tls_client_key=study_key, token=tokens["judge"])
    with TrainerClient(target, timeout=10, retries=1) as trainer, pytest.raises(PermissionDenied):
        trainer.cancel("some-job")
    # The study's token: past the gate, so the trainer itself answers (this request is not a valid job).
    tokens_file = pki.directory / "study-token"
    tokens_file.write_text(tokens["study"])
    client_env(tls_ca=pki.ca, tls_client_cert=study_cert, tls_client_key=study_key, token_file=tokens_file)
    with TrainerClient(target, timeout=10, retries=1) as trainer, pytest.raises(InvalidArgument):
        trainer.submit(base_model="", dataset_uri="", output_uri="")
    # A token nobody was given is UNAUTHENTICATED, whatever the certificate.
    client_env(tls_ca=pki.ca, tls_client_cert=study_cert, tls_client_key=study_key, token="x" * 20)
    with TrainerClient(target, timeout=10, retries=1) as trainer, pytest.raises(Unauthenticated):
        trainer.list()


def test_tokens_without_tls_on_loopback_and_never_in_plaintext_elsewhere(tmp_path, client_env):
    tokens = token_dir(tmp_path / "tokens", "study")
    settings = ServerSettings(port=0, metrics_port=0, callers=tmp_path / "tokens")
    registration = Registration(BASES["lid"](), GENERATED["lid"], SERVICES["lid"].grpc_service)
    with serve_in_thread([registration], settings) as address:
        client_env()
        wait_for_health(address, timeout=10)  # health is open
        with LidClient(address, timeout=5, retries=1) as anonymous, pytest.raises(Unauthenticated):
            anonymous.model_info()
        client_env(token=tokens["study"])
        with LidClient(address, timeout=5, retries=1) as lid:
            with pytest.raises(PolyglotError) as passed:  # past the gate: the generated servicer's UNIMPLEMENTED
                lid.model_info()
            assert passed.value.code == "UNIMPLEMENTED"
        with pytest.raises(FailedPrecondition, match="sent only over TLS or to loopback"):
            LidClient("lid.example.org:50051")


def test_a_rotated_token_takes_effect_on_a_running_server(tmp_path, client_env, monkeypatch):
    from services.common import auth

    monkeypatch.setattr(auth, "RELOAD_SECONDS", 0.0)  # the served value is 5 s
    old = token_dir(tmp_path / "tokens", "study")
    settings = ServerSettings(port=0, metrics_port=0, callers=tmp_path / "tokens")
    registration = Registration(BASES["lid"](), GENERATED["lid"], SERVICES["lid"].grpc_service)

    def outcome(token: str) -> str:
        client_env(token=token)
        with LidClient(address, timeout=5, retries=1) as lid:
            try:
                lid.model_info()
            except PolyglotError as exc:
                return exc.code  # UNIMPLEMENTED: past the gate (the generated servicer)
        return "OK"

    with serve_in_thread([registration], settings) as address:
        assert outcome(old["study"]) == "UNIMPLEMENTED"
        new = token_dir(tmp_path / "tokens", "study")  # the Secret rotated, the server still running
        assert outcome(new["study"]) == "UNIMPLEMENTED"
        assert outcome(old["study"]) == "UNAUTHENTICATED"


async def test_a_non_loopback_bind_without_auth_refuses_to_start_unless_insecure(tmp_path):  # grpc.aio needs a loop
    with pytest.raises(InvalidArgument, match="--insecure"):
        ServiceRuntime(ServerSettings(host="0.0.0.0", port=0, metrics_port=0), [])
    ServiceRuntime(ServerSettings(host="0.0.0.0", port=0, metrics_port=0, insecure=True), [])
    token_dir(tmp_path / "tokens", "study")
    ServiceRuntime(ServerSettings(host="0.0.0.0", port=0, metrics_port=0, callers=tmp_path / "tokens"), [])


def test_the_judge_calls_lid_with_the_process_credentials(
    tmp_path, client_env, lid_identifier, openai_server, judge_settings_factory, caplog
):
    """judge -> lid with mTLS and a token: a reply without a language is sent to a secured lid as `judge`."""
    import logging

    from services.judge.client import JudgeClient
    from services.judge.records import GradeItem, Outcome
    from services.lid.servicer import LidServicer
    from tests.fixtures.judge import running_judge

    pki = Pki(tmp_path / "pki")
    tokens = token_dir(tmp_path / "tokens", "judge")
    cert, key = pki.issue("server", server=True)
    judge_cert, judge_key = pki.issue("judge")
    settings = ServerSettings(port=0, metrics_port=0, tls_cert=cert, tls_key=key, tls_client_ca=pki.ca,
                              callers=tmp_path / "tokens")  # fmt: skip
    registration = Registration(LidServicer(lid_identifier), GENERATED["lid"], SERVICES["lid"].grpc_service)
    client_env(tls_ca=pki.ca, tls_client_cert=judge_cert, tls_client_key=judge_key, token=tokens["judge"])
    with (
        serve_in_thread([registration], settings) as lid,
        caplog.at_level(logging.INFO, logger="polyglot.rpc"),
        running_judge(judge_settings_factory(openai_server.base_url, lid_address=lid)) as judge,
        # The judge itself serves plaintext here (one process, one set of client credentials: the judge's),
        # so the test reaches it on a plain channel of its own.
        JudgeClient(channel=grpc.insecure_channel(judge), timeout=30, retries=1) as client,
    ):
        graded = client.grade([GradeItem("What is the capital of France?", "Paris is the capital.", "en")])
    assert graded.records[0].outcome == Outcome.GRADED
    callers = [r.getMessage() for r in caplog.records if '"CheckLanguage"' in r.getMessage()
               or '"Identify"' in r.getMessage()]  # fmt: skip
    assert callers and all('"caller": "judge"' in line for line in callers), callers
