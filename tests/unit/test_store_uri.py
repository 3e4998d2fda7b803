"""Store URIs, key rules, the backend registry and S3 settings (no server needed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.errors import InvalidArgument
from services.common.store import (
    LocalStore,
    S3Store,
    StoreLocation,
    backend_for,
    open_object,
    open_store,
    parse_uri,
    register_backend,
    validate_key,
    validate_prefix,
)
from services.common.store import uri as uri_module
from services.common.store.s3 import S3Settings


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://artifacts", StoreLocation("s3", "artifacts", "")),
        ("s3://artifacts/", StoreLocation("s3", "artifacts", "")),
        ("s3://artifacts/study/run1/", StoreLocation("s3", "artifacts", "study/run1")),
        ("S3://artifacts/x", StoreLocation("s3", "artifacts", "x")),
        ("file:///srv/artifacts", StoreLocation("file", "", "/srv/artifacts")),
        ("file://localhost/srv/artifacts", StoreLocation("file", "", "/srv/artifacts")),
        ("file:///srv/with%20space", StoreLocation("file", "", "/srv/with space")),
        ("/srv/artifacts/", StoreLocation("file", "", "/srv/artifacts")),
    ],
)
def test_parse_uri(uri: str, expected: StoreLocation):
    assert parse_uri(uri) == expected


def test_plain_relative_path_is_local_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert parse_uri("artifacts") == StoreLocation("file", "", str(tmp_path.resolve() / "artifacts"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_uri("~/a").path == str(tmp_path.resolve() / "a")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "non-empty"),
        ("s3://", "missing bucket"),
        ("s3:///prefix", "missing bucket"),
        ("s3://bucket/a/../b", "'..'"),
        ("s3://bucket/p?versionId=1", "query"),
        ("file://otherhost/x", "only local"),
        ("file:relative/dir", "absolute path"),
        ("gs://bucket/x", "unknown store scheme 'gs' (known: file, s3)"),
    ],
)
def test_bad_uri_names_the_field(uri: str, message: str):
    with pytest.raises(InvalidArgument, match=re.escape(message)) as err:
        parse_uri(uri)
    assert err.value.field == "uri"


def test_open_store_picks_the_backend(tmp_path: Path):
    local = open_store(str(tmp_path))
    assert isinstance(local, LocalStore) and local.root == tmp_path.resolve()
    assert local.uri() == tmp_path.resolve().as_uri()
    assert local.uri("a/b c") == tmp_path.resolve().as_uri() + "/a/b%20c"
    assert parse_uri(local.uri("a/b c")).path == str(tmp_path.resolve() / "a" / "b c")

    s3 = open_store("s3://artifacts/study/", endpoint="127.0.0.1:1")  # no network on construction
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix) == ("artifacts", "study/")
    assert s3.uri() == "s3://artifacts/study"
    assert s3.uri("models/m/") == "s3://artifacts/study/models/m/"
    assert open_store("s3://artifacts", endpoint="127.0.0.1:1").uri("k") == "s3://artifacts/k"


def test_open_object_splits_store_and_key(tmp_path: Path):
    store, key = open_object("s3://artifacts/models/m1/adapter.safetensors", endpoint="127.0.0.1:1")
    assert (store.uri(), key) == ("s3://artifacts", "models/m1/adapter.safetensors")
    assert store.uri(key) == "s3://artifacts/models/m1/adapter.safetensors"
    local, key = open_object((tmp_path / "models" / "m1").as_uri())
    assert (local.uri(key), key) == ((tmp_path / "models" / "m1").resolve().as_uri(), "m1")
    with pytest.raises(InvalidArgument, match="names no object"):
        open_object("s3://artifacts/")


@pytest.mark.parametrize("key", ["a", "a/b/c.json", "models/llama-2-7b/mix=1:1/seed=3", ".gitattributes", "ü/ελ"])
def test_valid_keys(key: str):
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    ["", "/a", "a//b", "a/", "..", "a/../b", "./a", ".~tmp", "a/.~b", "tab\tkey", "x" * 201, "a/" * 600],
)
def test_invalid_keys(key: str):
    with pytest.raises(InvalidArgument) as err:
        validate_key(key)
    assert err.value.field == "key"


def test_prefixes_may_be_empty_or_partial():
    for prefix in ("", "a", "a/", "a/b", "models/m"):
        assert validate_prefix(prefix) == prefix
    for prefix in ("/a", "a//b", "../x", "a/.~x"):
        with pytest.raises(InvalidArgument):
            validate_prefix(prefix)


def test_register_a_backend_by_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # A private copy of the registry's table, so that "scratch" is gone after the test.
    monkeypatch.setattr(uri_module.SCHEMES, "_entries", dict(uri_module.SCHEMES._entries))

    @register_backend("scratch")
    class ScratchStore(LocalStore):
        """`scratch://name` = a named directory under tmp_path."""

        @classmethod
        def from_location(cls, location: StoreLocation, **options):
            return cls(tmp_path / location.bucket)

    store = open_store("scratch://one")
    assert isinstance(store, ScratchStore) and backend_for("SCRATCH") is ScratchStore
    store.put_bytes("k", b"v")
    assert (tmp_path / "one" / "k").read_bytes() == b"v"
    # Schemes live in the one registry: no silent replacement, and only stores are accepted.
    with pytest.raises(ValueError, match="store scheme 'scratch' is already registered"):
        register_backend("Scratch", LocalStore)
    with pytest.raises(TypeError, match="store scheme 'nostore'"):
        register_backend("nostore", StoreLocation)
    register_backend("lazy", "pathlib:Path")
    with pytest.raises(TypeError, match="store scheme 'lazy'"):
        open_store("lazy://x")


def test_backends_load_lazily():
    code = (
        "import sys; from services.common.store import open_store; open_store('/tmp/x'); "
        "assert 'minio' not in sys.modules, 'local store imported the S3 client'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_s3_settings_from_env_and_overrides(monkeypatch: pytest.MonkeyPatch):
    for name in [n for n in os.environ if n.startswith("POLYGLOT_S3_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("POLYGLOT_S3_ENDPOINT", "https://minio.example:9000/")
    monkeypatch.setenv("POLYGLOT_S3_ACCESS_KEY", "AKIDEXAMPLE")
    monkeypatch.setenv("POLYGLOT_S3_SECRET_KEY", "top-secret-value")
    settings = S3Settings()
    assert (settings.endpoint, settings.secure, settings.region) == ("minio.example:9000", True, "us-east-1")
    assert "top-secret-value" not in repr(settings)
    store = S3Store("artifacts", endpoint="127.0.0.1:8333", region="eu-west-1")
    assert (store.settings.endpoint, store.settings.secure, store.settings.region) == (
        "127.0.0.1:8333",
        False,
        "eu-west-1",
    )
    assert store.settings.access_key == "AKIDEXAMPLE"  # not overridden: still from the environment
    assert "top-secret-value" not in repr(store)


@pytest.mark.parametrize("bucket", ["ab", "Upper", "-lead", "under_score", "a" * 64, "a..b"])
def test_s3_bucket_names_are_checked(bucket: str):
    with pytest.raises(InvalidArgument) as err:
        S3Store(bucket, endpoint="127.0.0.1:1")
    assert err.value.field == "bucket"
