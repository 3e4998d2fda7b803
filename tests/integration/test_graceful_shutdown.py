"""SIGTERM during a long streaming call: the call completes (or is cancelled cleanly) and the process exits 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from polyglot.v1 import generator_pb2 as pb
from polyglot.v1 import generator_pb2_grpc as pb_grpc

from services.common.client import wait_for_health

REPO_ROOT = Path(__file__).resolve().parents[2]


def _start(grace: float):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.slow_stream_server", str(port), str(grace)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_for_health(f"127.0.0.1:{port}", timeout=60)
    return proc, f"127.0.0.1:{port}"


def _stream_then_sigterm(proc, address, prompts: int):
    received, code = [], grpc.StatusCode.OK
    with grpc.insecure_channel(address) as channel:
        stream = pb_grpc.GeneratorServiceStub(channel).Generate(pb.GenerateRequest(prompts=["p"] * prompts), timeout=60)
        sent_at = None
        try:
            for result in stream:
                received.append(result.index)
                if len(received) == 2:
                    proc.send_signal(signal.SIGTERM)
                    sent_at = time.monotonic()
        except grpc.RpcError as exc:
            code = exc.code()
    proc.wait(timeout=30)
    return received, code, time.monotonic() - sent_at


@pytest.mark.slow
def test_in_flight_stream_completes_within_grace():
    proc, address = _start(grace=5.0)
    received, code, _ = _stream_then_sigterm(proc, address, prompts=10)
    assert code == grpc.StatusCode.OK
    assert received == list(range(10))  # the whole stream, though SIGTERM came after item 2
    assert proc.returncode == 0, proc.stdout.read().decode()


@pytest.mark.slow
def test_stream_longer_than_grace_is_cancelled_and_process_exits_zero_in_time():
    proc, address = _start(grace=0.5)
    received, code, elapsed = _stream_then_sigterm(proc, address, prompts=200)
    assert code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    assert 2 <= len(received) < 200
    assert proc.returncode == 0, proc.stdout.read().decode()
    assert elapsed < 0.5 + 5.0, f"exit took {elapsed:.1f} s after SIGTERM with a 0.5 s grace"
    log = proc.stdout.read().decode()
    assert '"event": "draining"' in log and '"event": "stopped"' in log
