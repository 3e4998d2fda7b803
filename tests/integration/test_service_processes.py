"""Each service process starts, answers health SERVING, and lists its services through reflection alone."""

from __future__ import annotations

import socket

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from services.common.catalog import SERVICES
from services.common.local import LocalServices


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    ports = {name: _free_port() for name in SERVICES}
    logs = tmp_path_factory.mktemp("service-logs")
    with LocalServices(list(SERVICES), ports=ports, log_dir=logs, grace=2) as services:
        services.wait_healthy(timeout=180)
        yield services


@pytest.mark.slow
@pytest.mark.parametrize("name", SERVICES)
def test_health_serving_and_reflection_lists_services(running, name):
    address = running.addresses[name]
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICES[name].grpc_service):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        # A client with no generated Polyglot stubs: everything it learns comes from reflection.
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert SERVICES[name].grpc_service in services
        assert "grpc.health.v1.Health" in services
        methods = [m.name for m in db.FindFileContainingSymbol(SERVICES[name].grpc_service).service[0].method]
        assert methods, f"{SERVICES[name].grpc_service} exposes no methods through reflection"


@pytest.mark.slow
def test_processes_exit_zero_on_sigterm(tmp_path):
    ports = {"lid": _free_port()}
    services = LocalServices(["lid"], ports=ports, grace=2).start()
    services.wait_healthy(timeout=120)
    codes = services.stop()
    assert codes == {"lid": 0}
