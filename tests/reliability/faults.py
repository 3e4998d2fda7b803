"""Store faults on cue: a real `LocalStore` (real files) whose reads blip or whose disk is full.

A test cannot unplug S3 or fill a disk on this machine (no root mounts), so the `faulty://` scheme wraps
the local backend: `FAULTS[root]` says what fails, for keys under `prefix`. A blip raises `Unavailable`
before reading, as the S3 backend does when its server does not answer; a full disk raises ENOSPC from
inside the backend's own write (its temp file is cleaned up as on a real `write`).

    faults = inject(tmp_path / "store")          # -> (Faults, "faulty:///.../store")
    faults.failing_reads = 10                    # the next ten reads under `prefix` fail
    faults.disk_full = True                      # every write under `prefix` fails with ENOSPC
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.errors import Unavailable
from services.common.store import SCHEMES, LocalStore, ObjectInfo, register_backend

SCHEME = "faulty"


@dataclass
class Faults:
    prefix: str = ""
    failing_reads: int = 0  # how many of the next reads fail
    disk_full: bool = False
    failed_reads: int = 0
    failed_writes: int = 0


FAULTS: dict[str, Faults] = {}


class FaultyStore(LocalStore):
    scheme = SCHEME

    @classmethod
    def from_location(cls, location: Any, **options: Any) -> FaultyStore:
        return cls("/" + location.path, **options)

    @property
    def faults(self) -> Faults:
        return FAULTS.setdefault(str(self.root), Faults())

    def stream(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        faults = self.faults
        if key.startswith(faults.prefix) and faults.failing_reads > 0:
            faults.failing_reads -= 1
            faults.failed_reads += 1
            raise Unavailable(f"cannot reach the store at {self.root} (injected)")
        return super().stream(key, chunk_size)

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        faults = self.faults
        if key.startswith(faults.prefix) and faults.disk_full:
            faults.failed_writes += 1
            return super().put_stream(key, _no_space(chunks))
        return super().put_stream(key, chunks)


def _no_space(chunks: Iterable[bytes]) -> Iterator[bytes]:
    for _ in chunks:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    yield b""  # pragma: no cover


class FullDisk:
    """`module.write_file_atomically` fails with ENOSPC for files named `name` while `on` (a monkeypatch):
    the trainer's state disk filling up at one chosen write."""

    def __init__(self, monkeypatch: Any, module: Any, name: str):
        self.on, real = True, module.write_file_atomically

        def write(dest, chunks):
            return real(dest, _no_space(chunks) if self.on and os.path.basename(dest) == name else chunks)

        monkeypatch.setattr(module, "write_file_atomically", write)


def inject(root: Path, prefix: str = "") -> tuple[Faults, str]:
    """Faults for a store at `root`, and the URI that opens it through them."""
    if SCHEME not in SCHEMES:
        register_backend(SCHEME, FaultyStore)
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    faults = FAULTS[str(root)] = Faults(prefix=prefix)
    return faults, f"{SCHEME}://{root}"
