"""The store's confinement: callers' URIs within a service's roots, bounded directory inputs, write-once
finished artifacts, and reads that never write beside what they read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
)
from services.common.settings import ServerSettings
from services.common.store import LocalStore, StoreRoots, check_write_once, fetch_dir_cached


@pytest.fixture
def roots(tmp_path: Path) -> StoreRoots:
    (tmp_path / "root").mkdir()
    return StoreRoots(file_roots=(tmp_path / "root",), s3_buckets=("artifacts",))


@pytest.mark.parametrize("uri", ["file:///", "/etc", "file:///etc/passwd", "s3://other/x", "relative/dir"])
def test_outside_the_roots_is_permission_denied_naming_the_field(roots: StoreRoots, uri: str):
    with pytest.raises(PermissionDenied) as err:
        roots.check(uri, field="spec.dataset_uri")
    assert err.value.field == "spec.dataset_uri" and uri in err.value.message


def test_the_refusal_does_not_say_whether_the_path_exists(roots: StoreRoots, tmp_path: Path):
    (tmp_path / "secret.txt").write_text("x")
    messages = []
    for name in ("secret.txt", "no-such-file"):
        with pytest.raises(PermissionDenied) as err:
            roots.check((tmp_path / name).as_uri(), field="uri")
        messages.append(err.value.message.replace(name, "NAME"))
    assert messages[0] == messages[1]


def test_a_symlink_out_of_a_root_is_outside(roots: StoreRoots, tmp_path: Path):
    (tmp_path / "root" / "escape").symlink_to(tmp_path)
    with pytest.raises(PermissionDenied):
        roots.check((tmp_path / "root" / "escape" / "x").as_uri(), field="uri")


def test_inside_the_roots_and_in_the_buckets_is_admitted(roots: StoreRoots, tmp_path: Path):
    assert roots.check((tmp_path / "root" / "a" / "b").as_uri(), field="uri").path == str(tmp_path / "root/a/b")
    assert roots.check("s3://artifacts/models/x", field="uri").bucket == "artifacts"
    with pytest.raises(InvalidArgument) as err:
        roots.check("s3://artifacts/a/../b", field="uri")
    assert err.value.field == "uri"


def test_a_service_defaults_to_its_data_dir_and_local_store(tmp_path: Path):
    settings = ServerSettings(store_uri=str(tmp_path / "store"))
    roots = StoreRoots.for_service(settings, tmp_path / "state")
    assert roots.file_roots == (tmp_path / "state", tmp_path / "store") and roots.s3_buckets is None
    chosen = StoreRoots.for_service(ServerSettings(file_roots=[tmp_path / "data"], s3_buckets=["b1"]), tmp_path)
    assert chosen.file_roots == (tmp_path / "data",) and chosen.s3_buckets == ("b1",)


def test_a_directory_input_is_refused_past_its_file_count_before_anything_is_copied(tmp_path: Path):
    source = LocalStore(tmp_path / "big")
    for n in range(6):
        source.put_bytes(f"f{n}", b"x")
    with pytest.raises(ResourceExhausted):
        fetch_dir_cached(source, "", tmp_path / "cache", max_files=5)
    with pytest.raises(ResourceExhausted):
        fetch_dir_cached(source, "", tmp_path / "cache", max_bytes=5)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    assert fetch_dir_cached(source, "", tmp_path / "cache", max_files=6, max_bytes=6).is_dir()


def test_reading_writes_nothing_beside_the_input(tmp_path: Path):
    """Hashes computed on read go to the reader's own cache directory, never next to someone's file."""
    data = tmp_path / "theirs"
    data.mkdir()
    (data / "train.jsonl").write_text('{"text": "x"}\n')
    plain = LocalStore(data)
    first = plain.stat("train.jsonl").sha256
    cached = LocalStore(data, hash_cache=tmp_path / "hashes")
    assert cached.stat("train.jsonl").sha256 == first == cached.stat("train.jsonl").sha256
    assert sorted(p.name for p in data.iterdir()) == ["train.jsonl"]
    assert len(list((tmp_path / "hashes").iterdir())) == 1


def test_a_prefix_inside_or_holding_a_finished_artifact_is_written_once(roots: StoreRoots, tmp_path: Path):
    store = LocalStore(tmp_path / "root")
    store.put_bytes("models/m/job/adapter/adapter_model.safetensors", b"weights")
    store.put_json("models/m/job/manifest.json", {"outputs": {}})
    for prefix in ("models/m/job", "models/m/job/adapter", "models/m/job/adapter/deeper", "models", ""):
        with pytest.raises(AlreadyExists) as err:
            check_write_once(store.uri(prefix), field="spec.output_uri", roots=roots)
        assert err.value.field == "spec.output_uri"
    check_write_once(store.uri("models/m2/job"), field="spec.output_uri", roots=roots)  # new: fine
    store.put_bytes("models/m3/job/checkpoints/latest.json", b"{}")  # unfinished: a resumed job writes on
    check_write_once(store.uri("models/m3/job"), field="spec.output_uri", roots=roots)


def test_a_prefix_with_too_many_objects_is_no_output_prefix(tmp_path: Path):
    store = LocalStore(tmp_path / "root")
    for n in range(4):
        store.put_bytes(f"o/{n}", b"")
    with pytest.raises(FailedPrecondition):
        check_write_once(store.uri("o"), field="out", roots=StoreRoots(file_roots=(tmp_path,), max_files=3))


def test_a_local_run_admits_the_users_own_adapters_and_base_model(tmp_path: Path):
    """`polyglot study run` / `eval` start the services themselves: their roots take in the user's files."""
    from flows.config import load_config
    from flows.config.evaluated import EvaluatedModel
    from flows.local import local_file_roots

    repo = Path(__file__).resolve().parents[2]
    cfg = load_config(repo / "configs" / "smoke.yaml", {"artifact_store": (tmp_path / "store").as_uri()})
    assert local_file_roots(cfg, "meta-llama/Llama-2-7b-hf", tmp_path / "state") == {}  # the defaults do
    mine = EvaluatedModel(name="mine", base_model=cfg.base_models[0].name, adapter=str(tmp_path / "my-adapter"))
    env = local_file_roots(cfg.model_copy(update={"evaluate_models": [mine]}), (tmp_path / "llama").as_uri(),
                           tmp_path / "state")  # fmt: skip
    roots = {service: StoreRoots(file_roots=json.loads(value)) for service, value in env.items()}
    generator, trainer = roots["POLYGLOT_GENERATOR_FILE_ROOTS"], roots["POLYGLOT_TRAINER_FILE_ROOTS"]
    generator.check((tmp_path / "my-adapter").as_uri(), field="uri")
    generator.check((tmp_path / "store" / "models" / "x").as_uri(), field="uri")
    trainer.check((tmp_path / "llama").as_uri(), field="spec.base_model")
    with pytest.raises(PermissionDenied):
        trainer.check((tmp_path / "my-adapter").as_uri(), field="spec.base_model")
