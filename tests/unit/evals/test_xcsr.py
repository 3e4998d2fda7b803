"""The X-CSR release as X-CSQA's source: the archive over loopback HTTP or on disk, copied once into the
artifact store (no download in tests: the test writes an archive of made-up questions in the release's layout)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows import keys
from flows.evals import TASKS, xcsr
from flows.evals.xcsqa import parse_jsonl
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.store import LocalStore


def record(qid: str, lang: str, stem: str, answer: str = "C") -> dict:
    texts = [f"{stem} option {n}" for n in range(5)]
    return {
        "id": qid,
        "lang": lang,
        "question": {"stem": stem, "choices": [{"label": "ABCDE"[i], "text": t} for i, t in enumerate(texts)]},
        "answerKey": answer,
    }


RELEASE = {
    code: [record(f"q{n}", code, f"{code} question {n}", "ABCDE"[n % 5]) for n in range(6)]
    for code in ("en", "de", "jap")
}


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return xcsr.write_archive(tmp_path / "site" / "xcsr_datasets.zip", RELEASE)


@pytest.fixture
def server(archive: Path) -> Iterator[tuple[ThreadingHTTPServer, str]]:
    handler = partial(SimpleHTTPRequestHandler, directory=str(archive.parent))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}/{archive.name}"
    httpd.shutdown()
    httpd.server_close()


def test_archive_over_http_is_downloaded_once_into_the_store(server, tmp_path: Path) -> None:
    httpd, url = server
    store = LocalStore(tmp_path / "store")
    text = xcsr.dev_jsonl(url, "ja", store=store)  # Japanese is `jap` in the release
    assert [q.stem for q in parse_jsonl(text, url)] == [r["question"]["stem"] for r in RELEASE["jap"]]
    stored = sorted(info.key for info in store.list("sources/"))
    # One download brought every language of the archive into the store.
    prefix = keys.source_copy_key("x-csr", xcsr.identity(url), "")
    assert stored == [f"{prefix}X-CSQA/{code}/dev.jsonl" for code in ("de", "en", "jap")]

    httpd.shutdown()  # the source is gone: later reads come from the store
    german = parse_jsonl(xcsr.dev_jsonl(url, "de", store=store), "store")
    assert [(q.id, q.answer, q.options[2]) for q in german] == [
        (r["id"], r["answerKey"], r["question"]["choices"][2]["text"]) for r in RELEASE["de"]
    ]


def test_unreachable_archive_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="polyglot data build CONFIG --only evalsets") as caught:
        xcsr.dev_jsonl("http://127.0.0.1:9/xcsr_datasets.zip", "de", store=LocalStore(tmp_path))
    assert caught.value.field == xcsr.FIELD


def test_a_pinned_hash_is_checked(server, archive: Path) -> None:
    _, url = server
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert parse_jsonl(xcsr.dev_jsonl(url, "en", sha256=good), url)[0].id == "q0"
    with pytest.raises(InvalidArgument, match="not the pinned") as caught:
        xcsr.dev_jsonl(url, "en", sha256="0" * 64)
    assert caught.value.field == "evaluation.tasks.xcsqa.source_sha256"


def test_local_archive_and_unpacked_release(archive: Path, tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp_path / "unpacked")
    for source in (archive, tmp_path / "unpacked"):
        questions = parse_jsonl(xcsr.dev_jsonl(str(source), "de"), str(source))
        assert [q.id for q in questions] == [r["id"] for r in RELEASE["de"]]
    with pytest.raises(NotFound, match="X-CSQA/sw/dev.jsonl"):
        xcsr.dev_jsonl(str(archive), "sw")
    # A local source enters the eval set's key by content, not by where it lies.
    assert xcsr.inputs_digest(str(archive)) == hashlib.sha256(archive.read_bytes()).hexdigest()
    settings = keys.item_settings(TASKS.get("xcsqa").options(languages=["de"], source=str(archive)))
    assert "source" not in settings and "source_sha256" not in settings


def test_hub_rows_become_release_records() -> None:
    """The hub's parquet keeps `choices` as columns; the stored copy has the release's list of dicts."""
    hub_row = {
        "id": "q9",
        "lang": "de",
        "question": {"stem": "Wo?", "choices": {"label": list("ABCDE"), "text": list("vwxyz")}},
        "answerKey": "E",
    }
    (question,) = parse_jsonl(xcsr.to_jsonl([hub_row]), "hub")
    assert (question.labels, question.options, question.answer) == (tuple("ABCDE"), tuple("vwxyz"), "E")


def test_options_take_one_source(tmp_path: Path) -> None:
    options = TASKS.get("xcsqa").options
    assert options(languages=["de"]).source == "x-csr"  # the paper configs need no data step
    assert options(languages=["de"], data_dir=tmp_path).source is None
    with pytest.raises(ValidationError, match="not both"):
        options(languages=["de"], data_dir=tmp_path, source="x-csr")


def test_build_items_reads_the_store_copy(server, tmp_path: Path) -> None:
    _, url = server
    task = TASKS.get("xcsqa")
    options = task.options(languages=["de"], source=url, sample_size=4)
    store = LocalStore(tmp_path / "store")
    items = task.build_items(options, "de", seed=1, store=store)
    assert len(items) == 4 and all(item.answers[0] in "ABCDE" for item in items)
    assert task.inputs(options, "de")["data"] == "x-csr:" + keys.digest(xcsr.identity(url))
