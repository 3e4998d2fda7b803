"""Run services as local child processes (`polyglot up`, the smoke study, e2e tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from services.common.catalog import SERVICES
from services.common.client import wait_for_health
from services.common.errors import Unavailable


class LocalServices:
    """Starts `polyglot-serve <name>` children on loopback; stops them with SIGTERM (then SIGKILL).

    Ports: `ports[name]` if given, else `base_port` shifted by the service's place in the catalog, else the
    catalog's own port.
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
        self.addresses = {n: f"127.0.0.1:{(ports or {}).get(n, default[n])}" for n in names}
        self.env = {**os.environ, **(env or {})}
        self.log_dir = log_dir
        self.grace = grace
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self) -> LocalServices:
        for name in self.names:
            port = self.addresses[name].rsplit(":", 1)[1]
            cmd = [sys.executable, "-m", "services.common.serve", name, "--port", port, "--metrics-port", "0"]
            out = open(self.log_dir / f"{name}.log", "ab") if self.log_dir else subprocess.DEVNULL
            self.processes[name] = subprocess.Popen(
                cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait_healthy(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for name, address in self.addresses.items():
            proc = self.processes[name]
            while True:
                if proc.poll() is not None:
                    raise Unavailable(f"{name} exited with code {proc.returncode} before it was healthy")
                try:
                    wait_for_health(address, timeout=min(2.0, max(0.1, deadline - time.monotonic())))
                    break
                except Unavailable:
                    if time.monotonic() > deadline:
                        raise

    def all_alive(self) -> bool:
        return all(p.poll() is None for p in self.processes.values())

    def exit_codes(self) -> dict[str, int | None]:
        return {n: p.poll() for n, p in self.processes.items()}

    def stop(self) -> dict[str, int | None]:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 5
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return self.exit_codes()

    def __enter__(self) -> LocalServices:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
