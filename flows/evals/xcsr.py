"""X-CSQA's questions from the X-CSR release (Lin et al., 2021, "Common Sense Beyond English").

`evaluation.tasks.xcsqa.source` names where the release is read from:

    x-csr                                   the hub copy, INK-USC/xcsr (config X-CSQA-<code>, split validation)
    <org>/<name>                            a hub mirror of the same shape
    https://inklab.usc.edu/XCSR/xcsr_datasets.zip   the release archive (X-CSR_datasets/X-CSQA/<code>/dev.jsonl)
    ./xcsr_datasets.zip, ./X-CSR_datasets   the archive, or the unpacked release, on this machine
    ./xcsr                                  a local copy of the hub dataset (its README.md and X-CSQA-<code>/)

Only the dev split is read: the release's test.jsonl withholds its answers (the hub's test rows have an
empty answerKey), so it cannot be scored. The paper evaluated on dev as well (its data preparation reads
`X-CSQA/<lang>/dev.jsonl`, 1,000 questions per language).

A remote source is downloaded once: the first eval-set build copies each language's dev records into the
artifact store (`flows.keys.source_copy_key`), and every later build, on any machine that reaches the store,
reads them there. A local source is read in place and hashed instead.

    from flows.evals import xcsr
    text = xcsr.dev_jsonl("x-csr", "de", store=open_store("s3://artifacts/study"))
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from flows import keys
from services.common.config.types import looks_like_path
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound

FIELD = "evaluation.tasks.xcsqa.source"
ALIAS = "x-csr"
HUB_ID = "INK-USC/xcsr"
ARCHIVE_URL = "https://inklab.usc.edu/XCSR/xcsr_datasets.zip"  # the release; the hub copy is built from it
VERSION = 1  # bump when the stored copy of equal source bytes would differ
# The release names Japanese `jap`; every other study language uses its ISO 639-1 code.
RELEASE_CODES = {"ja": "jap"}
DOWNLOAD_TIMEOUT_S = 120
OFFLINE_HINT = (
    f"set {FIELD} to a local copy of the release (its archive, {ARCHIVE_URL}, or the hub dataset's folder), or "
    "run `polyglot data build CONFIG --only evalsets` once on a machine that reaches it: later builds read the "
    "release's dev files from the artifact store"
)


def release_code(language: str) -> str:
    return RELEASE_CODES.get(language, language)


def is_local(source: str) -> bool:
    return looks_like_path(source) or Path(source).exists()


def is_archive_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def hub_id(source: str) -> str:
    return HUB_ID if source == ALIAS else source


def identity(source: str, sha256: str | None = None) -> dict[str, Any]:
    """What a remote source's stored copy is named by: the source and its pinned hash, never a path.
    Cheap (no download), so plans and artifact keys need no network."""
    remote = source if is_archive_url(source) else f"hub:{hub_id(source)}"
    return {"kind": "x-csr", "version": VERSION, "source": remote, "sha256": sha256, "split": "dev"}


def inputs_digest(source: str, sha256: str | None = None) -> str:
    """The eval set's data input: a local source by its content, a remote one by its identity."""
    if is_local(source):
        return _local_sha256(Path(source))
    return "x-csr:" + keys.digest(identity(source, sha256))


# -- records -----------------------------------------------------------------------------------------------


def release_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row in the release's jsonl shape. The hub's parquet stores `choices` as columns
    (`{"label": [...], "text": [...]}`), the release as a list of `{"label", "text"}`."""
    question = row["question"]
    choices = question["choices"]
    if isinstance(choices, Mapping):
        choices = [
            {"label": label, "text": text} for label, text in zip(choices["label"], choices["text"], strict=True)
        ]
    return {
        "id": str(row["id"]),
        "lang": row.get("lang", ""),
        "question": {"stem": question["stem"], "choices": [{"label": c["label"], "text": c["text"]} for c in choices]},
        "answerKey": row.get("answerKey", ""),
    }


def to_jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(release_record(row), ensure_ascii=False, sort_keys=True) + "\n" for row in rows)


# -- reading each kind of source -----------------------------------------------------------------------------


def _member(names: Iterable[str], code: str) -> str | None:
    """The archive member `…/X-CSQA/<code>/dev.jsonl`, whatever the top folder is called."""
    suffix = f"X-CSQA/{code}/dev.jsonl"
    return next((name for name in names if name == suffix or name.endswith("/" + suffix)), None)


def _archive_languages(archive: zipfile.ZipFile) -> dict[str, str]:
    """Release code → dev.jsonl text, for every X-CSQA language in the archive."""
    out = {}
    for name in archive.namelist():
        parts = name.split("/")
        if len(parts) >= 3 and parts[-3] == "X-CSQA" and parts[-1] == "dev.jsonl":
            out[parts[-2]] = archive.read(name).decode("utf-8")
    return out


def _local_sha256(path: Path) -> str:
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    files = sorted(path.glob("X-CSQA-*/validation*")) if _is_hub_snapshot(path) else []
    files = files or sorted(path.glob("**/X-CSQA/*/dev.jsonl"))
    if not files:
        raise NotFound(f"{path} holds neither X-CSQA/<lang>/dev.jsonl nor X-CSQA-<lang>/: not X-CSR", field=FIELD)
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.parent.name}\n".encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _is_hub_snapshot(path: Path) -> bool:
    """A local copy of the hub dataset (`hf download INK-USC/xcsr --repo-type dataset --local-dir DIR`):
    its dataset card declares the `X-CSQA-<code>` configs beside their parquet folders."""
    return path.is_dir() and (path / "README.md").is_file() and any(path.glob("X-CSQA-*"))


def _read_local(path: Path, code: str) -> str:
    if _is_hub_snapshot(path):
        return _read_hub(str(path), code)
    if path.is_dir():
        found = sorted(path.glob(f"**/X-CSQA/{code}/dev.jsonl"))
        if not found:
            raise NotFound(f"no X-CSQA/{code}/dev.jsonl under {path}", field=FIELD)
        return found[0].read_text(encoding="utf-8")
    if not path.is_file():
        raise NotFound(f"X-CSR source {path} does not exist", field=FIELD)
    with zipfile.ZipFile(path) as archive:
        member = _member(archive.namelist(), code)
        if member is None:
            raise NotFound(f"{path} has no X-CSQA/{code}/dev.jsonl", field=FIELD)
        return archive.read(member).decode("utf-8")


def _download(url: str, sha256: str | None) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310 (http(s) only)
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise FailedPrecondition(
            f"cannot download the X-CSR release from {url} ({exc}); {OFFLINE_HINT}",
            field=FIELD,
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if sha256 and actual != sha256:
        raise InvalidArgument(f"{url} has SHA-256 {actual}, not the pinned {sha256}", field=f"{FIELD}_sha256")
    return data


def _read_hub(dataset_id: str, code: str) -> str:
    import datasets  # heavy; only a hub source needs it

    try:
        rows = datasets.load_dataset(dataset_id, f"X-CSQA-{code}", split="validation")
    except (FileNotFoundError, ValueError, ConnectionError) as exc:
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise FailedPrecondition(
            f"X-CSR dataset {dataset_id!r} config X-CSQA-{code}: {exc}{offline}; {OFFLINE_HINT}",
            field=FIELD,
        ) from exc
    return to_jsonl(rows)


# -- with the artifact store -----------------------------------------------------------------------------------


def dev_jsonl(source: str, language: str, *, sha256: str | None = None, store: Any = None) -> str:
    """The language's dev.jsonl text, in the release's record shape.

    A remote source is read from the store when a build already copied it there; otherwise it is downloaded,
    and with a store every language it brought (the whole archive, or the hub's one config) is put there."""
    code = release_code(language)
    if is_local(source):
        return _read_local(Path(source), code)
    ident = identity(source, sha256)
    key = keys.source_copy_key("x-csr", ident, f"X-CSQA/{code}/dev.jsonl")
    if store is not None and store.exists(key):
        return store.get_bytes(key).decode("utf-8")
    if is_archive_url(source):
        with zipfile.ZipFile(io.BytesIO(_download(source, sha256))) as archive:
            fetched = _archive_languages(archive)
        if code not in fetched:
            raise NotFound(f"{source} has no X-CSQA/{code}/dev.jsonl", field=FIELD)
    else:
        fetched = {code: _read_hub(hub_id(source), code)}
    if store is not None:
        for other, text in fetched.items():
            # Normalised to one record shape, so a hub and an archive copy of the release read alike.
            normal = to_jsonl(json.loads(line) for line in text.splitlines() if line.strip())
            store.put_bytes(keys.source_copy_key("x-csr", ident, f"X-CSQA/{other}/dev.jsonl"), normal.encode())
    return fetched[code]


def write_archive(path: Path, records: Mapping[str, Iterable[Mapping[str, Any]]], *, split: str = "dev") -> Path:
    """An archive in the release's layout (`X-CSR_datasets/X-CSQA/<code>/<split>.jsonl`), from records per
    release code: for tests and for packing a local copy."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for code, rows in records.items():
            archive.writestr(f"X-CSR_datasets/X-CSQA/{code}/{split}.jsonl", to_jsonl(rows))
    return path
