"""The shared runtime over real loopback gRPC: error mapping, deadlines, limits, logs, metrics, TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

import grpc
import pytest
from polyglot.v1 import generator_pb2 as pb
from polyglot.v1 import generator_pb2_grpc as pb_grpc
from prometheus_client import REGISTRY

from services.common import errors
from services.common.client import ServiceClient
from services.common.inprocess import serve_in_thread
from services.common.server import Registration
from services.common.settings import ServerSettings


class ScriptedGenerator(pb_grpc.GeneratorServiceServicer):
    """Behaviour chosen by request_id, so each test drives one path of the runtime."""

    def __init__(self):
        self.cancelled = asyncio.Event()

    async def Score(self, request, context):
        match request.request_id:
            case "bad":
                raise errors.InvalidArgument("must not be empty", field="items[2].continuation")
            case "missing":
                raise errors.NotFound("adapter 'x' is not loaded", field="adapter")
            case "bug":
                raise ValueError("secret internal detail")
            case "slow":
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    self.cancelled.set()
                    raise
        return pb.ScoreResponse(results=[pb.ScoreResult(index=i, logprob=-1.0) for i in range(len(request.items))])

    async def Generate(self, request, context):
        for i, _ in enumerate(request.prompts):
            await asyncio.sleep(0.01)
            yield pb.GenerateResult(index=i, text=f"out{i}")
        if request.request_id == "fail-mid-stream":
            raise errors.ResourceExhausted("batch too large for memory")


class GeneratorClient(ServiceClient):
    stub_class = pb_grpc.GeneratorServiceStub


@pytest.fixture(scope="module")
def servicer():
    return ScriptedGenerator()


@pytest.fixture(scope="module")
def address(servicer):
    reg = Registration(servicer, pb_grpc.add_GeneratorServiceServicer_to_server, "polyglot.v1.GeneratorService")
    with serve_in_thread([reg], ServerSettings(port=0, metrics_port=0, max_message_mb=1)) as addr:
        yield addr


@pytest.fixture()
def client(address):
    with GeneratorClient(address, timeout=10, retries=1) as c:
        yield c


def test_ok_unary_and_stream(client):
    reply = client.call("Score", pb.ScoreRequest(items=[pb.ScoreItem(context="a", continuation="b")] * 3))
    assert [r.index for r in reply.results] == [0, 1, 2]
    texts = [r.text for r in client.stream("Generate", pb.GenerateRequest(prompts=["a", "b"]))]
    assert texts == ["out0", "out1"]


@pytest.mark.parametrize(
    ("request_id", "code", "error", "text"),
    [
        ("bad", grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument, "items[2].continuation"),
        ("missing", grpc.StatusCode.NOT_FOUND, errors.NotFound, "adapter"),
    ],
)
def test_domain_errors_map_to_status_codes_naming_the_field(address, client, request_id, code, error, text):
    stub = pb_grpc.GeneratorServiceStub(grpc.insecure_channel(address))
    with pytest.raises(grpc.RpcError) as raw:
        stub.Score(pb.ScoreRequest(request_id=request_id), timeout=5)
    assert raw.value.code() == code
    assert text in raw.value.details()
    with pytest.raises(error, match=r"\w"):  # the typed client raises the same domain class
        client.call("Score", pb.ScoreRequest(request_id=request_id))


def test_unexpected_error_is_internal_without_leaking_details(address):
    stub = pb_grpc.GeneratorServiceStub(grpc.insecure_channel(address))
    with pytest.raises(grpc.RpcError) as raw:
        stub.Score(pb.ScoreRequest(request_id="bug"), timeout=5)
    assert raw.value.code() == grpc.StatusCode.INTERNAL
    assert "secret internal detail" not in raw.value.details()
    assert "ValueError" in raw.value.details()


def test_error_mid_stream_keeps_the_results_already_sent(address):
    stub = pb_grpc.GeneratorServiceStub(grpc.insecure_channel(address))
    got = []
    with pytest.raises(grpc.RpcError) as raw:
        for result in stub.Generate(pb.GenerateRequest(prompts=["a", "b"], request_id="fail-mid-stream"), timeout=5):
            got.append(result.index)
    assert got == [0, 1]
    assert raw.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_unimplemented_method_answers_unimplemented(address):
    stub = pb_grpc.GeneratorServiceStub(grpc.insecure_channel(address))
    with pytest.raises(grpc.RpcError) as raw:
        stub.ListModels(pb.ListModelsRequest(), timeout=5)
    assert raw.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_deadline_is_honoured_and_the_handler_is_cancelled(address, servicer):
    stub = pb_grpc.GeneratorServiceStub(grpc.insecure_channel(address))
    with pytest.raises(grpc.RpcError) as raw:
        stub.Score(pb.ScoreRequest(request_id="slow"), timeout=0.3)
    assert raw.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    loop_wait = 0
    while not servicer.cancelled.is_set() and loop_wait < 50:
        import time

        time.sleep(0.05)
        loop_wait += 1
    assert servicer.cancelled.is_set(), "the server kept working after the client's deadline"


def test_max_message_size_is_enforced(address):
    stub = pb_grpc.GeneratorServiceStub(grpc.insecure_channel(address))
    big = pb.ScoreRequest(items=[pb.ScoreItem(context="x" * (2 * 1024 * 1024))])
    with pytest.raises(grpc.RpcError) as raw:
        stub.Score(big, timeout=5)
    assert raw.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_one_log_line_per_call_without_payloads(client, caplog):
    with caplog.at_level(logging.INFO, logger="polyglot.rpc"):
        client.call("Score", pb.ScoreRequest(items=[pb.ScoreItem(context="PAYLOAD-SECRET", continuation="b")]))
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "polyglot.rpc"]
    assert len(lines) == 1
    assert lines[0]["method"] == "Score" and lines[0]["code"] == "OK" and lines[0]["ms"] >= 0
    assert "PAYLOAD-SECRET" not in caplog.text


def test_prometheus_counts_calls_and_errors(client):
    def count(code):
        return REGISTRY.get_sample_value(
            "polyglot_rpc_calls_total",
            {"service": "polyglot.v1.GeneratorService", "method": "Score", "code": code},
        ) or 0.0

    ok, bad = count("OK"), count("INVALID_ARGUMENT")
    client.call("Score", pb.ScoreRequest())
    with pytest.raises(errors.InvalidArgument):
        client.call("Score", pb.ScoreRequest(request_id="bad"))
    assert count("OK") == ok + 1
    assert count("INVALID_ARGUMENT") == bad + 1
    assert REGISTRY.get_sample_value(
        "polyglot_rpc_latency_seconds_count", {"service": "polyglot.v1.GeneratorService", "method": "Score"}
    )


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_from_files(tmp_path, servicer):
    cert, key = _self_signed(tmp_path)
    reg = Registration(servicer, pb_grpc.add_GeneratorServiceServicer_to_server, "polyglot.v1.GeneratorService")
    settings = ServerSettings(port=0, metrics_port=0, tls_cert=cert, tls_key=key)
    with serve_in_thread([reg], settings) as addr:
        port = addr.rsplit(":", 1)[1]
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(f"localhost:{port}", creds) as channel:
            reply = pb_grpc.GeneratorServiceStub(channel).Score(pb.ScoreRequest(), timeout=10)
        assert list(reply.results) == []
        with grpc.insecure_channel(addr) as plain, pytest.raises(grpc.RpcError):
            pb_grpc.GeneratorServiceStub(plain).Score(pb.ScoreRequest(), timeout=3)
