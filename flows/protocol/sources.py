"""The paper's own files, downloaded at a pinned commit, checked against pinned SHA-256 values, cached.

    polyglot protocol fetch                              # into protocol.sources (~/.cache/polyglot/paper-sources)
    polyglot protocol fetch --bundle paper.tar.gz        # and an offline bundle for an air-gapped cluster
    polyglot protocol fetch --from-bundle paper.tar.gz   # there: unpack, verify, install
    polyglot protocol fetch --print-hashes > pins.local.yaml   # the pin table with the files' SHA-256

The pin table (`pins.yaml`: repository, commit, the files each text comes from, their SHA-256) is data.
A directory of sources is *installed* only once every file matched its pin: it then holds the files at
their repository paths and `MANIFEST.json` (repository, commit, hashes). `verified_sources` re-hashes the
files on every use, so a file edited in the cache is caught, not used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from services.common.errors import FailedPrecondition, InvalidArgument

PINS_FILE = Path(__file__).with_name("pins.yaml")
MANIFEST = "MANIFEST.json"
SOURCES_ENV = "POLYGLOT_PAPER_SOURCES"
BASE_URL_ENV = "POLYGLOT_PAPER_BASE_URL"
PINS_ENV = "POLYGLOT_PAPER_PINS"
DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
FETCH_COMMAND = "polyglot protocol fetch"


@dataclass(frozen=True)
class Pins:
    """What the pin table says: the commit, the files each text comes from and their SHA-256 (None = unpinned)."""

    repository: str
    commit: str
    roles: Mapping[str, Any]
    sha256: Mapping[str, str | None]

    @property
    def files(self) -> list[str]:
        return list(self.sha256)

    def path_of(self, role: str, language: str | None = None) -> str:
        entry = self.roles[role]
        return entry[language] if language is not None else entry


def load_pins(path: Path | None = None) -> Pins:
    """The pin table: `path`, else $POLYGLOT_PAPER_PINS (tests and CI pin fixture sources this way), else
    the shipped `pins.yaml`."""
    path = path or os.environ.get(PINS_ENV) or PINS_FILE
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    pins = Pins(data["repository"], str(data["commit"]), data["roles"], dict(data["sha256"]))
    if len(pins.commit) != 40:
        raise InvalidArgument(f"pins commit {pins.commit!r} is not a 40-hex commit id", field="pins.commit")
    named = {p for role in pins.roles.values() for p in (role.values() if isinstance(role, dict) else [role])}
    if named - set(pins.sha256):
        raise InvalidArgument(f"files without a sha256 entry: {sorted(named - set(pins.sha256))}", field="pins.sha256")
    return pins


def default_sources_dir() -> Path:
    """Where sources live unless a config says otherwise: $POLYGLOT_PAPER_SOURCES, else the user cache."""
    env = os.environ.get(SOURCES_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "polyglot" / "paper-sources"


class PaperSourcesMissing(FailedPrecondition):
    """The config uses the paper's texts and the verified sources are not there (exit 2 before any service)."""


class ChecksumMismatch(FailedPrecondition):
    """A fetched file differs from its pin: a different commit, a corrupted download or a wrong pin."""


class Unpinned(FailedPrecondition):
    """Files were fetched that the pin table has no SHA-256 for; they are not installed."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- checking a directory ---------------------------------------------------------------------------------------


def problems(directory: Path, pins: Pins) -> list[str]:
    """Why `directory` is not a verified copy of the pinned files (empty when it is)."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        return [f"{directory} holds no fetched paper sources ({MANIFEST} is missing)"]
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if (manifest.get("repository"), manifest.get("commit")) != (pins.repository, pins.commit):
        return [
            f"{directory} holds {manifest.get('repository')}@{manifest.get('commit')}, "
            f"not the pinned {pins.repository}@{pins.commit}"
        ]
    found = []
    for name, pinned in pins.sha256.items():
        path = directory / name
        if not path.is_file():
            found.append(f"{name} is missing")
        elif pinned is None:
            found.append(f"{name} has no pinned SHA-256 (pins.yaml)")
        elif sha256_of(path.read_bytes()) != pinned:
            found.append(f"{name} does not match its pinned SHA-256")
    return found


def verified_sources(directory: Path, pins: Pins | None = None) -> Path:
    """`directory` if it holds the pinned files, byte for byte; PaperSourcesMissing naming what is wrong."""
    pins = pins or load_pins()
    found = problems(Path(directory), pins)
    if found:
        raise PaperSourcesMissing(
            f"the paper's sources ({pins.repository}@{pins.commit[:12]}) are not ready: {'; '.join(found[:5])}"
            f"{' …' if len(found) > 5 else ''}. Fetch them on a machine that reaches GitHub: "
            f"`{FETCH_COMMAND} --sources {directory}` (or unpack an offline bundle there with "
            f"`{FETCH_COMMAND} --from-bundle FILE.tar.gz --sources {directory}`)",
            field="protocol.sources",
        )
    return Path(directory)


# -- which configs need them --------------------------------------------------------------------------------------


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if obj is None:
            return None
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
    return obj


def paper_fields(cfg: Any) -> list[str]:
    """The config paths whose value makes the study read the paper's texts."""
    fields = [
        path
        for path in ("judge.template", "judge.translation_template", "data.mixes.mono_ids")
        if _get(cfg, path) == "paper"
    ]
    tasks = _get(cfg, "evaluation.tasks") or {}
    for name, option in (("xquad", "template"), ("xcsqa", "template"), ("chat", "alpaca_eval_prompts")):
        if name in tasks and _get(tasks[name], option) == "paper":
            fields.append(f"evaluation.tasks.{name}.{option}")
    return fields


def sources_dir(cfg: Any) -> Path:
    configured = _get(cfg, "protocol.sources")
    return Path(configured).expanduser() if configured else default_sources_dir()


_active: Path | None = None


def require_paper_sources(cfg: Any, pins: Pins | None = None) -> Path | None:
    """The verified sources directory when `cfg` uses any paper text (None when it uses none); otherwise
    PaperSourcesMissing naming the fields that need them, what is missing and the command to fetch it.
    Also makes the directory the one `active_sources()` answers, for the task hooks of this process."""
    fields = paper_fields(cfg)
    if not fields:
        return None
    directory = sources_dir(cfg)
    try:
        verified_sources(directory, pins)
    except PaperSourcesMissing as exc:
        verb = "needs" if len(fields) == 1 else "need"
        raise PaperSourcesMissing(
            f"{', '.join(fields)} {verb} the paper's own texts; {exc.message}", field=exc.field
        ) from None
    use_sources(directory)
    return directory


def use_sources(directory: Path) -> None:
    """Make `directory` this process's (and its children's) paper sources."""
    global _active
    _active = Path(directory)
    os.environ[SOURCES_ENV] = str(directory)


def active_sources() -> Path:
    return _active or default_sources_dir()


# -- fetching ------------------------------------------------------------------------------------------------------


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code == 429 or exc.code >= 500
    return isinstance(exc, (urllib.error.URLError, TimeoutError, ConnectionError))


@retry(
    retry=retry_if_exception(_transient), stop=stop_after_attempt(4), wait=wait_exponential(0.5, max=8), reraise=True
)
def _download(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (an https or loopback URL)
        return response.read()


def file_url(base_url: str, pins: Pins, name: str) -> str:
    """`<base>/<owner>/<repo>/<commit>/<path>`: raw.githubusercontent.com's layout (and the test server's)."""
    return f"{base_url.rstrip('/')}/{pins.repository}/{pins.commit}/{name}"


@dataclass
class Fetched:
    files: dict[str, bytes] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)


Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def download_all(
    pins: Pins, base_url: str | None = None, timeout: float = 60.0, progress: Progress = _stderr
) -> Fetched:
    base = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    fetched = Fetched()
    for number, name in enumerate(pins.files, start=1):
        url = file_url(base, pins, name)
        try:
            data = _download(url, timeout)
        except urllib.error.HTTPError as exc:
            raise FailedPrecondition(f"{url}: HTTP {exc.code} {exc.reason}", field="protocol.sources") from None
        except (urllib.error.URLError, OSError) as exc:
            raise FailedPrecondition(
                f"{url} is unreachable ({exc}); on an air-gapped machine use "
                f"`{FETCH_COMMAND} --from-bundle FILE.tar.gz`",
                field="protocol.sources",
            ) from None
        fetched.files[name] = data
        fetched.hashes[name] = sha256_of(data)
        progress(f"[{number}/{len(pins.files)}] {name} ({len(data):,} bytes)")
    return fetched


def check_pins(pins: Pins, hashes: Mapping[str, str]) -> None:
    """ChecksumMismatch for a file that differs from its pin, Unpinned when some have no pin."""
    wrong = [name for name, pinned in pins.sha256.items() if pinned is not None and hashes[name] != pinned]
    if wrong:
        details = "; ".join(f"{n}: pinned {pins.sha256[n][:12]}…, got {hashes[n][:12]}…" for n in wrong)
        raise ChecksumMismatch(
            f"{len(wrong)} file(s) differ from their pins at {pins.commit[:12]}: {details}", field="protocol.sources"
        )
    unpinned = [name for name, pinned in pins.sha256.items() if pinned is None]
    if unpinned:
        raise Unpinned(
            f"{len(unpinned)} file(s) have no pinned SHA-256 in the pin table (e.g. {unpinned[0]}); nothing was "
            f"installed. Pin them yourself: `{FETCH_COMMAND} --print-hashes > pins.local.yaml`, check the files, "
            f"then `{FETCH_COMMAND} --pins pins.local.yaml` and set POLYGLOT_PAPER_PINS=pins.local.yaml for runs",
            field="pins.sha256",
        )


def hash_lines(pins: Pins, hashes: Mapping[str, str]) -> str:
    """A whole pin table: `pins` with these hashes as its `sha256:` block. A maintainer pastes the block
    into pins.yaml; a user who has checked the files keeps the table and passes it (`--pins FILE` or
    $POLYGLOT_PAPER_PINS) to fetch and to every run."""
    table = {"repository": pins.repository, "commit": pins.commit, "roles": dict(pins.roles)}
    head = yaml.safe_dump(table, sort_keys=False, allow_unicode=True, default_flow_style=False)
    note = f"# {pins.repository} at {pins.commit}: the files' SHA-256 as `{FETCH_COMMAND} --print-hashes` got them\n"
    return note + head + "sha256:\n" + "".join(f"  {name}: {hashes[name]}\n" for name in pins.files)


def install(directory: Path, pins: Pins, files: Mapping[str, bytes]) -> Path:
    """Write verified files and their manifest into `directory`, replacing what was there as a whole."""
    check_pins(pins, {name: sha256_of(data) for name, data in files.items()})
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        for name, data in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        manifest = {
            "repository": pins.repository,
            "commit": pins.commit,
            "sha256": {name: sha256_of(data) for name, data in files.items()},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def fetch(directory: Path, pins: Pins | None = None, base_url: str | None = None, progress: Progress = _stderr) -> Path:
    """Download the pinned files, check them, install them into `directory`."""
    pins = pins or load_pins()
    fetched = download_all(pins, base_url, progress=progress)
    installed = install(directory, pins, fetched.files)
    progress(f"installed {pins.repository}@{pins.commit[:12]} into {installed}")
    return installed


# -- offline bundles -----------------------------------------------------------------------------------------------


def write_bundle(directory: Path, bundle: Path, pins: Pins | None = None) -> Path:
    """A .tar.gz of a verified sources directory (its files and manifest under `paper-<commit>/`)."""
    pins = pins or load_pins()
    verified_sources(directory, pins)
    bundle = Path(bundle)
    bundle.parent.mkdir(parents=True, exist_ok=True)
    top = f"paper-{pins.commit}"
    with tarfile.open(bundle, "w:gz") as tar:
        for name in [*pins.files, MANIFEST]:
            tar.add(Path(directory) / name, arcname=f"{top}/{name}", recursive=False)
    return bundle


def read_bundle(bundle: Path, directory: Path, pins: Pins | None = None) -> Path:
    """Unpack `bundle`, check every file against the pins and install it into `directory`."""
    pins = pins or load_pins()
    top = f"paper-{pins.commit}/"
    files: dict[str, bytes] = {}
    with tarfile.open(bundle, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            if not member.name.startswith(top):
                raise InvalidArgument(
                    f"{bundle} is not a bundle of {pins.commit[:12]} ({member.name})", field="--from-bundle"
                )
            name = member.name.removeprefix(top)
            if name in pins.sha256:
                files[name] = tar.extractfile(member).read()  # only pinned names are read; nothing is extracted
    missing = [name for name in pins.files if name not in files]
    if missing:
        raise InvalidArgument(f"{bundle} lacks {', '.join(missing)}", field="--from-bundle")
    return install(directory, pins, files)
