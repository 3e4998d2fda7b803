"""One contract for every artifact store backend: the local directory and S3 (real SeaweedFS).

Each test runs against both backends unless its name says otherwise; the S3 store lives under a key
prefix in a fresh bucket, so prefix handling is exercised everywhere.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from services.common.store import ArtifactStore, LocalStore, ObjectInfo, S3Store, open_store, retrying
from tests.fixtures.seaweedfs import S3Server, free_ports

MiB = 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parents[2]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def s3_store(server: S3Server, bucket: str, prefix: str = "", **overrides) -> S3Store:
    options = dict(
        endpoint=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        region=server.region,
        part_size=5 * MiB,  # the S3 minimum, so a 6 MiB object already goes multipart
        max_retries=0,
    )
    return S3Store(bucket, prefix, **{**options, **overrides})


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    server = request.getfixturevalue("s3_server")
    return s3_store(server, request.getfixturevalue("s3_bucket"), "study/run1")


def keys(store: ArtifactStore, prefix: str = "") -> list[str]:
    return [info.key for info in store.list(prefix)]


# -- round trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"hello polyglot", b"", bytes(range(256)) * 17])
def test_bytes_round_trip(store: ArtifactStore, data: bytes):
    info = store.put_bytes("datasets/mix/part-0.bin", data)
    assert info == ObjectInfo(
        key="datasets/mix/part-0.bin",
        size=len(data),
        sha256=sha(data),
        uri=store.uri("datasets/mix/part-0.bin"),
        modified=info.modified,
    )
    assert store.get_bytes("datasets/mix/part-0.bin") == data
    assert store.stat("datasets/mix/part-0.bin") == info


def test_overwrite_replaces_content_and_hash(store: ArtifactStore):
    store.put_bytes("k", b"first version")
    info = store.put_bytes("k", b"second")
    assert store.get_bytes("k") == b"second"
    assert store.stat("k").sha256 == info.sha256 == sha(b"second")
    assert keys(store) == ["k"]


def test_file_round_trip(store: ArtifactStore, tmp_path: Path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(300_000))
    info = store.put_file("files/src.bin", src)
    assert (info.size, info.sha256) == (src.stat().st_size, sha(src.read_bytes()))
    dest = tmp_path / "out" / "nested" / "copy.bin"
    assert store.get_file("files/src.bin", dest) == dest
    assert dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.bin"]  # no temp left behind


def test_large_stream_round_trip(store: ArtifactStore, request: pytest.FixtureRequest):
    data = os.urandom(6 * MiB + 123)
    chunks = (data[i : i + 700_000] for i in range(0, len(data), 700_000))
    info = store.put_stream("models/big.safetensors", chunks)
    assert (info.size, info.sha256) == (len(data), sha(data))
    parts = list(store.stream("models/big.safetensors", chunk_size=MiB))
    assert max(len(p) for p in parts) <= MiB
    assert b"".join(parts) == data
    if isinstance(store, S3Store):  # S3 multipart ETags end in -<number of parts>
        client = request.getfixturevalue("s3_server").client()
        raw = client.stat_object(store.bucket, store.prefix + "models/big.safetensors")
        assert raw.etag.endswith("-2")


def test_stream_of_many_small_chunks(store: ArtifactStore):
    chunks = [f"line {i}\n".encode() for i in range(5000)]
    info = store.put_stream("results/lines.txt", iter(chunks))
    assert info.sha256 == sha(b"".join(chunks))
    assert store.get_bytes("results/lines.txt") == b"".join(chunks)


# -- exists, stat, list ----------------------------------------------------------------------------


def test_exists_stat_and_list_with_prefixes(store: ArtifactStore):
    contents = {"a/1": b"1", "a/2/x": b"22", "a/b": b"333", "ab": b"4444", "b/1": b"55555", "a-c": b"6"}
    for key, data in contents.items():
        store.put_bytes(key, data)

    assert store.exists("a/2/x") and not store.exists("a/2") and not store.exists("a/3")
    info = store.stat("a/b")
    assert (info.key, info.size, info.sha256) == ("a/b", 3, sha(b"333"))
    assert info.modified.tzinfo is not None
    assert abs(datetime.now(UTC) - info.modified) < timedelta(hours=1)

    # Sorted by key in byte order ('-' < '/' < 'b'), recursive, prefix is a plain string prefix.
    assert keys(store) == ["a-c", "a/1", "a/2/x", "a/b", "ab", "b/1"]
    assert keys(store, "a/") == ["a/1", "a/2/x", "a/b"]
    assert keys(store, "a") == ["a-c", "a/1", "a/2/x", "a/b", "ab"]
    assert keys(store, "a/2") == ["a/2/x"]
    assert keys(store, "zzz/") == []
    listed = {i.key: i for i in store.list("b/")}
    assert listed["b/1"] == store.stat("b/1")
    assert listed["b/1"].sha256 == sha(b"55555")


def test_uri_names_the_object(store: ArtifactStore):
    info = store.put_bytes("reports/r.md", b"# report")
    assert info.uri == store.uri("reports/r.md")
    assert info.uri.startswith(store.uri() + "/")
    reopened = open_store(store.uri(), **(_s3_options(store) if isinstance(store, S3Store) else {}))
    assert reopened.get_bytes("reports/r.md") == b"# report"


def _s3_options(store: S3Store) -> dict:
    s = store.settings
    return dict(endpoint=s.endpoint, access_key=s.access_key, secret_key=s.secret_key, region=s.region)


# -- manifests and directories --------------------------------------------------------------------


def test_json_manifest_is_stable_utf8(store: ArtifactStore):
    manifest = {"langs": ["de", "is"], "name": "Íslenska – ελληνικά", "hash": "ab12", "n": 3}
    a = store.put_json("datasets/m/manifest.json", manifest)
    raw = store.get_bytes("datasets/m/manifest.json")
    assert raw.decode("utf-8").startswith('{\n  "hash": "ab12",\n  "langs": [')
    assert "Íslenska – ελληνικά".encode() in raw  # not \u-escaped
    assert store.get_json("datasets/m/manifest.json") == manifest
    b = store.put_json("datasets/m/again.json", dict(reversed(list(manifest.items()))))
    assert a.sha256 == b.sha256  # same content, same bytes, whatever the insertion order


def test_get_json_rejects_non_json(store: ArtifactStore):
    store.put_bytes("not.json", b"\xff\xfe not json")
    with pytest.raises(FailedPrecondition, match="not a JSON document"):
        store.get_json("not.json")


def test_dir_round_trip(store: ArtifactStore, tmp_path: Path):
    src = tmp_path / "adapter"
    files = {
        "adapter_config.json": b'{"r": 8}',
        "adapter_model.safetensors": os.urandom(50_000),
        "tokenizer/tokenizer.json": b"{}",
        "tokenizer/empty.txt": b"",
        ".gitattributes": b"* text",
    }
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)

    infos = store.put_dir("models/m1", src)
    assert [i.key for i in infos] == sorted(f"models/m1/{rel}" for rel in files)
    store.put_bytes("models/m10/other", b"must not leak into models/m1")

    dest = tmp_path / "restored"
    written = store.get_dir("models/m1/", dest)
    assert sorted(p.relative_to(dest).as_posix() for p in written) == sorted(files)
    for rel, data in files.items():
        assert (dest / rel).read_bytes() == data
    with pytest.raises(NotFound):
        store.get_dir("models/m", tmp_path / "nothing")  # a directory prefix, not a string prefix


# -- delete and errors ------------------------------------------------------------------------------


def test_delete(store: ArtifactStore):
    store.put_bytes("d/e/f", b"x")
    store.put_bytes("d/keep", b"y")
    store.delete("d/e/f")
    assert not store.exists("d/e/f")
    assert keys(store) == ["d/keep"]
    store.delete("d/e/f")  # idempotent: a retried delete is not an error
    store.delete("d/keep")
    store.put_bytes("d", b"a former prefix can become an object")
    assert keys(store) == ["d"]


def test_missing_object_is_not_found(store: ArtifactStore, tmp_path: Path):
    assert not store.exists("no/such/object")
    for call in (
        lambda: store.get_bytes("no/such/object"),
        lambda: store.stat("no/such/object"),
        lambda: store.stream("no/such/object"),  # raised at call time, not on first next()
        lambda: store.get_file("no/such/object", tmp_path / "x"),
        lambda: store.get_json("no/such/object"),
        lambda: store.get_dir("no/such", tmp_path / "y"),
    ):
        with pytest.raises(NotFound) as err:
            call()
        assert err.value.code == "NOT_FOUND"
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "key", ["", "/abs", "a//b", "a/../b", "..", "a/./b", "dir/", ".~tmp", "a/.~x.part", "nul\x00", "x" * 201]
)
def test_invalid_key_is_invalid_argument(store: ArtifactStore, key: str):
    for call in (
        lambda: store.put_bytes(key, b"x"),
        lambda: store.put_stream(key, [b"x"]),
        lambda: store.get_bytes(key),
        lambda: store.stat(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(InvalidArgument) as err:
            call()
        assert err.value.field == "key"
    assert keys(store) == []


# -- a writer killed half-way -------------------------------------------------------------------------

_KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, threading, time
    from services.common.store import open_store

    store = open_store(sys.argv[1])

    def slow_chunks():
        for i in range(64):
            yield os.urandom(256 * 1024)
            if i == 15:
                os.write(1, b"halfway\\n")  # one write per line: the two threads do not interleave
                time.sleep(120)  # killed here, 4 MiB into a 16 MiB object

    for key in sys.argv[2:]:
        threading.Thread(target=store.put_stream, args=(key, slow_chunks())).start()
    """
)


def test_write_killed_half_way_leaves_no_visible_object(store: ArtifactStore, request: pytest.FixtureRequest):
    """Issue 2 acceptance: a write killed half-way leaves no visible object (and the old one intact)."""
    store.put_bytes("crash/existing", b"version 1")
    env = dict(os.environ)
    if isinstance(store, S3Store):
        env.update(request.getfixturevalue("s3_server").env())
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, store.uri(), "crash/new", "crash/existing"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(2):
            line = child.stdout.readline()
            assert line == "halfway\n", f"writer failed before half-way: {child.stderr.read()}"
        if isinstance(store, LocalStore):  # the kill really interrupts a write in progress
            assert any(p.name.startswith(".~new.") for p in (store.root / "crash").iterdir())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()

    assert not store.exists("crash/new")
    assert keys(store) == ["crash/existing"]
    assert store.get_bytes("crash/existing") == b"version 1"
    if isinstance(store, S3Store):
        uploads = store._client._list_multipart_uploads(store.bucket, prefix=store.prefix)
        assert not uploads.uploads  # spooled locally: not even a pending upload reached the server


_KILLED_UPLOADER = textwrap.dedent(
    """
    import os, sys, time
    from services.common.store import open_store

    store = open_store(sys.argv[1], part_size=5 * 1024 * 1024)
    upload_part = store._client._upload_part

    def upload_part_then_hang(*args, **kwargs):
        etag = upload_part(*args, **kwargs)  # really sent to the server
        os.write(1, b"part uploaded\\n")
        time.sleep(120)  # killed here, 1 of 3 parts in
        return etag

    store._client._upload_part = upload_part_then_hang
    store.put_bytes(sys.argv[2], os.urandom(12 * 1024 * 1024))
    """
)


def test_s3_writer_killed_mid_multipart_upload(s3_server: S3Server, s3_bucket: str):
    """The S3 half of the crash contract: a multipart upload cut off after a part stays invisible."""
    store = s3_store(s3_server, s3_bucket, "p")
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_UPLOADER, store.uri(), "big/model.bin"],
        cwd=REPO_ROOT,
        env={**os.environ, **s3_server.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line == "part uploaded\n", f"uploader failed: {child.stderr.read()}"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()

    pending = store._client._list_multipart_uploads(s3_bucket, prefix="p/").uploads
    assert [u.object_name for u in pending] == ["p/big/model.bin"]  # the kill hit mid-upload
    assert not store.exists("big/model.bin")
    assert keys(store) == []


# -- S3 only: credentials and reachability ----------------------------------------------------------


@pytest.mark.parametrize("wrong", ["secret", "access_key"])
def test_s3_wrong_credentials_are_permission_denied(s3_server: S3Server, s3_bucket: str, wrong: str):
    good = s3_store(s3_server, s3_bucket)
    good.put_bytes("k", b"x")
    bad_secret = "not-the-secret-" + "7" * 20
    access_key = "intruder" if wrong == "access_key" else s3_server.access_key
    bad = s3_store(s3_server, s3_bucket, access_key=access_key, secret_key=bad_secret)
    for call in (
        lambda: bad.stat("k"),
        lambda: bad.get_bytes("k"),
        lambda: bad.put_bytes("k2", b"x"),
        lambda: list(bad.list()),
    ):
        with pytest.raises(PermissionDenied) as err:
            call()
        message = str(err.value)
        assert f"access key id {access_key!r}" in message
        assert bad_secret not in message and s3_server.secret_key not in message
    assert keys(good) == ["k"]


def test_s3_wrong_secret_message_is_clear(s3_server: S3Server, s3_bucket: str):
    bad = s3_store(s3_server, s3_bucket, secret_key="wrong")
    with pytest.raises(PermissionDenied, match="secret key is wrong; check POLYGLOT_S3_SECRET_KEY"):
        bad.get_bytes("k")


def test_s3_unreachable_endpoint_is_unavailable_fast(tmp_path: Path):
    (port,) = free_ports(1)  # nothing listens there
    store = S3Store(
        "bucket", endpoint=f"127.0.0.1:{port}", access_key="a", secret_key="b", connect_timeout=1, max_retries=1
    )
    start = time.monotonic()
    for call in (lambda: store.stat("k"), lambda: store.put_bytes("k", b"x"), lambda: list(store.list())):
        with pytest.raises(Unavailable, match=f"cannot reach S3 at http://127.0.0.1:{port}"):
            call()
    assert time.monotonic() - start < 5


def test_s3_unreachable_endpoint_is_retried_for_the_window_then_unavailable():
    (port,) = free_ports(1)  # nothing listens there
    store = S3Store("bucket", endpoint=f"127.0.0.1:{port}", access_key="a", secret_key="b", max_retries=0)
    retries: list[int] = []
    patient = retrying(store, window_seconds=1.0, on_retry=lambda exc, n: retries.append(n))
    with pytest.raises(Unavailable, match=f"cannot reach S3 at http://127.0.0.1:{port}"):
        patient.put_bytes("k", b"x")
    assert retries and retries == list(range(1, len(retries) + 1))


def test_s3_missing_bucket(s3_server: S3Server):
    reader = s3_store(s3_server, "no-such-bucket-here", create_bucket=False)
    with pytest.raises(NotFound):
        reader.get_bytes("k")
    with pytest.raises(NotFound, match="bucket 'no-such-bucket-here' does not exist"):
        list(reader.list())
    writer = s3_store(s3_server, f"created-on-write-{uuid.uuid4().hex[:8]}")
    writer.put_bytes("k", b"x")
    assert writer.get_bytes("k") == b"x"


def test_s3_env_settings_reach_the_store(s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    store = open_store(f"s3://{s3_bucket}/from-env")
    store.put_bytes("k", b"configured by POLYGLOT_S3_*")
    assert s3_server.client().get_object(s3_bucket, "from-env/k").read() == b"configured by POLYGLOT_S3_*"


def test_s3_foreign_object_gets_a_hash(s3_server: S3Server, s3_bucket: str):
    import io

    s3_server.client().put_object(s3_bucket, "foreign", io.BytesIO(b"no metadata"), 11)
    assert s3_store(s3_server, s3_bucket).stat("foreign").sha256 == sha(b"no metadata")


def test_directory_inputs_are_bounded_while_listed(store: ArtifactStore, tmp_path: Path):
    for name in ("a", "b", "sub/c"):
        store.put_bytes(f"model/{name}", b"1234")
    assert store.size("model/sub/c") == 4
    assert store.dir_keys("model") == ["model/a", "model/b", "model/sub/c"]
    with pytest.raises(ResourceExhausted):
        store.dir_keys("model", max_files=2)
    with pytest.raises(ResourceExhausted):
        store.get_dir("model", tmp_path / "copy", max_bytes=11)
    assert not (tmp_path / "copy").exists()  # refused before anything was read


# -- local only: the hash sidecar ---------------------------------------------------------------------


def test_local_stale_hash_is_recomputed(tmp_path: Path):
    store = LocalStore(tmp_path)
    store.put_bytes("m", b"original")
    path = tmp_path / "m"
    path.write_bytes(b"replaced")  # by hand, behind the store's back: same size, new content
    os.utime(path, ns=(1, 1))
    assert store.stat("m").sha256 == sha(b"replaced")
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".~")] == ["m"]


def test_local_key_cannot_be_both_object_and_prefix(tmp_path: Path):
    """A filesystem limit S3 does not have: `a` and `a/b` cannot coexist; the error says why."""
    store = LocalStore(tmp_path)
    store.put_bytes("a", b"object")
    store.put_bytes("x/y", b"object")
    for key in ("a/b", "x"):
        with pytest.raises(FailedPrecondition) as err:
            store.put_bytes(key, b"clash")
        assert err.value.field == "key"
    assert keys(store) == ["a", "x/y"]
