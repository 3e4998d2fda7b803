"""Run services as local child processes (`polyglot up`, `polyglot study run`, e2e tests).

Only our own children are ever used: a port is bind-checked before its child starts, and a service counts
as up only when health answers SERVING *and* the listening socket belongs to the child (so a squatter that
answers health on the port is never mistaken for ours).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from services.common.catalog import SERVICES
from services.common.client import wait_for_health
from services.common.errors import FailedPrecondition, Unavailable


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on host:port now (the same bind the services make, no SO_REUSEPORT)."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def choose_ports(wanted: dict[str, int], movable: set[str], log=print) -> dict[str, int]:
    """`wanted` where free; a busy port of a `movable` service is replaced by a free one, any other busy port
    is refused (FailedPrecondition naming the service and port)."""
    chosen = {}
    for name, port in wanted.items():
        if port_free(port):
            chosen[name] = port
        elif name in movable:
            chosen[name] = free_port()
            log(f"{name}: port {port} is in use by another process; using {chosen[name]}")
        else:
            raise FailedPrecondition(f"{name}: port {port} is in use by another process; stop it or pick another port")
    return chosen


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` owns a listening TCP socket on `port` (Linux /proc; elsewhere assumed)."""
    if sys.platform != "linux":
        return True
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False  # the process is gone
    except OSError:
        return True  # cannot look (permissions): the bind check before start must do
    inodes = set()
    for fd in fds:
        with contextlib.suppress(OSError):  # an fd closed since the listing
            inodes.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port and f"socket:[{cols[9]}]" in inodes:
                return True
    return False


class LocalServices:
    """Starts `polyglot-serve <name>` children on loopback; stops them with SIGTERM (then SIGKILL).

    Ports: `ports[name]` if given, else `base_port` shifted by the service's place in the catalog, else the
    catalog's own port. Busy ports are refused at `start`; pick them with `choose_ports` first.
    """

    def __init__(
        self,
        names: list[str],
        *,
        base_port: int | None = None,
        ports: dict[str, int] | None = None,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        grace: float = 10.0,
    ):
        order = list(SERVICES)
        default = {n: SERVICES[n].port if base_port is None else base_port + order.index(n) for n in names}
        self.names = names
        self.ports = {n: (ports or {}).get(n, default[n]) for n in names}
        self.addresses = {n: f"127.0.0.1:{p}" for n, p in self.ports.items()}
        self.env = {**os.environ, **(env or {})}
        self.log_dir = log_dir
        self.grace = grace
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self) -> LocalServices:
        choose_ports(self.ports, movable=set())  # refuses a busy port before any child starts
        for name in self.names:
            cmd = [
                sys.executable, "-m", "services.common.serve", name,
                "--port", str(self.ports[name]), "--metrics-port", "0",
            ]  # fmt: skip
            out = open(self.log_path(name), "ab") if self.log_dir else subprocess.DEVNULL
            self.processes[name] = subprocess.Popen(
                cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            if self.log_dir:
                out.close()  # the child has its own copy
        return self

    def log_path(self, name: str) -> Path | None:
        return self.log_dir / f"{name}.log" if self.log_dir else None

    def _failed(self, name: str, why: str) -> Unavailable:
        log = self.log_path(name)
        return Unavailable(f"{name} {why}" + (f"; its log: {log}" if log else ""))

    def wait_healthy(self, timeout: float = 120.0) -> None:
        """Until every child serves its own gRPC service on its own port; raise naming the one that did not."""
        deadline = time.monotonic() + timeout
        for name, address in self.addresses.items():
            proc = self.processes[name]
            while True:
                if proc.poll() is not None:
                    raise self._failed(name, f"exited with code {proc.returncode} before it was healthy")
                remaining = deadline - time.monotonic()
                try:
                    wait_for_health(address, min(2.0, max(0.1, remaining)), service=SERVICES[name].grpc_service)
                    if listens(proc.pid, self.ports[name]):
                        break
                except Unavailable as exc:
                    if remaining <= 0:
                        raise self._failed(name, f"not healthy after {timeout:g} s ({exc.message})") from None
                    continue
                if remaining <= 0:
                    raise self._failed(name, f"never listened on {address}: another process answers there")
                time.sleep(0.2)

    def all_alive(self) -> bool:
        return all(p.poll() is None for p in self.processes.values())

    def exit_codes(self) -> dict[str, int | None]:
        return {n: p.poll() for n, p in self.processes.items()}

    def stop(self, grace: float | None = None) -> dict[str, int | None]:
        """SIGTERM (the services drain in-flight calls), SIGKILL whatever is left after the grace."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + (self.grace + 5 if grace is None else grace)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return self.exit_codes()

    def kill(self) -> None:
        """At once, no drain (a second Ctrl-C)."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.kill()

    def __enter__(self) -> LocalServices:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
