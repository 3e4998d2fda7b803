"""An S3 server that can go down on cue: SeaweedFS (`tests.fixtures.seaweedfs`) stopped and restarted on
the same ports and data directory, so that clients see connection refusals for the outage and then the
objects they wrote before it.

    with OutageS3(tmp_path) as s3:
        s3.client().make_bucket("bucket")
        s3.outage(10)          # down 10 s and its restart's time (same ports and data); returns once it serves
        s3.outages             # [(started, ended)] in time.monotonic()
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

from tests.fixtures.seaweedfs import S3Server, _stop, seaweedfs_ports, start_seaweedfs


class OutageS3:
    """A SeaweedFS S3 server with `stop`, `start` and `outage(seconds)`; `server` holds its address."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.keys = ("polyglot-chaos", "s3cr3t-" + uuid.uuid4().hex)
        self.ports = seaweedfs_ports()
        self.proc: subprocess.Popen | None = None
        self.server: S3Server | None = None
        self.outages: list[tuple[float, float]] = []

    def start(self) -> S3Server:
        self.proc, self.server = start_seaweedfs(self.workdir, *self.keys, ports=self.ports)
        return self.server

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def outage(self, seconds: float) -> None:
        """Down for `seconds` (every listener closed), then back with its data; returns once it serves."""
        started = time.monotonic()
        self.stop()
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
        self.start()
        self.outages.append((started, time.monotonic()))

    def __enter__(self) -> OutageS3:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # The address stays across restarts: what `S3Server` gives for it holds for the whole test.
    def client(self):
        return self.server.client()

    def env(self) -> dict[str, str]:
        return self.server.env()
