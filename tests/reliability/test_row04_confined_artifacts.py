"""Row 4: `file://` URIs were not confined. A trainer `output_uri` pointing at a finished study's adapter was
accepted (the job would overwrite the adapter in place, while the study still points at it); LoadAdapter and
`dataset_uri` wrote `.~<name>.sha256` sidecars beside whatever they read (as root: anywhere); `file:///`
made the generator walk and hash the whole file system under its adapter lock. Reproduced before the fix
against the real trainer service and the generator's adapter cache: the submit into a finished artifact
returned a QUEUED job; a dataset outside any root was NOT_FOUND or INVALID_ARGUMENT depending on whether it
existed; sidecars appeared beside the dataset and the adapter.

Remedy (services/common/store/confine.py, local.py, base.py): each service opens callers' URIs through its
`StoreRoots` (`file://` under `POLYGLOT_FILE_ROOTS`, default its data directory and local store; `s3://` in
`POLYGLOT_S3_BUCKETS` when set), refusing anything else with one PERMISSION_DENIED whether it exists or not;
an output prefix inside or holding a finished artifact (`manifest.json`) is ALREADY_EXISTS naming
`spec.output_uri`; a read never writes beside its input (hashes go to the reader's cache); directory inputs
are refused past `max_input_files` / `max_input_bytes`, counted while listing, before anything is copied.

    .venv/bin/python -m pytest tests/reliability/test_row04_confined_artifacts.py -q
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from services.common import errors
from services.common.settings import ServerSettings
from services.common.store import LocalStore
from services.generator.adapters import AdapterCache
from services.trainer.client import TrainerClient
from tests.fixtures.trainer import TINY_RECIPE, guanaco_rows


def beside(directory: Path) -> list[str]:
    """What a reader left in `directory` (the store's hidden names start with `.~`)."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".~"))


@contextmanager
def trainer_with_roots(settings, root: Path) -> Iterator[str]:
    from services.common.inprocess import serve_in_thread
    from services.trainer.main import build

    server = ServerSettings(port=0, metrics_port=0, file_roots=[root])
    with serve_in_thread(partial(build, settings=settings), server, grace=1.0) as address:
        yield address


@pytest.fixture
def root(tmp_path: Path, shared_dir: Path) -> Path:
    """The trainer's only file root, holding a finished study (adapter + manifest) and a hand-written dataset."""
    root = tmp_path / "root"
    study = LocalStore(root)
    study.put_bytes("models/m/job/adapter/adapter_model.safetensors", b"the study's weights")
    study.put_json("models/m/job/adapter/adapter_config.json", {"peft_type": "LORA"})
    study.put_json("models/m/job/manifest.json", {"job_id": "job-1", "outputs": {}})
    rows = "".join(json.dumps(row) + "\n" for row in guanaco_rows(shared_dir, 8))
    (root / "data").mkdir()
    (root / "data" / "train.jsonl").write_text(rows)  # by hand, as a user's file: no sidecar of the store's
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "train.jsonl").write_text(rows)
    return root


def test_the_trainer_confines_uris_and_never_overwrites_a_finished_artifact(
    trainer_settings_factory, tiny_llama_dir, root: Path, tmp_path: Path
):
    study = LocalStore(root)
    before = {info.key: info.sha256 for info in study.list("models/")}
    spec = {"base_model": str(tiny_llama_dir), "dataset_uri": (root / "data" / "train.jsonl").as_uri(),
            "training": TINY_RECIPE}  # fmt: skip
    with trainer_with_roots(trainer_settings_factory(), root) as address, TrainerClient(address) as client:
        for output in ("models/m/job/adapter", "models/m/job", "models"):
            with pytest.raises(errors.AlreadyExists) as info:
                client.submit(**spec, output_uri=study.uri(output))
            assert str(info.value).startswith("spec.output_uri: ") and "finished artifact" in str(info.value)

        refusals = []
        for dataset in (tmp_path / "outside" / "train.jsonl", tmp_path / "outside" / "no-such.jsonl"):
            with pytest.raises(errors.PermissionDenied) as info:
                client.submit(**{**spec, "dataset_uri": dataset.as_uri()}, output_uri=study.uri("models/new/job"))
            assert str(info.value).startswith("spec.dataset_uri: ")
            refusals.append(str(info.value).replace(dataset.name, "NAME"))
        assert refusals[0] == refusals[1]  # whether the file exists outside is not said
        with pytest.raises(errors.PermissionDenied) as info:
            client.submit(**spec, output_uri=(tmp_path / "elsewhere").as_uri())
        assert str(info.value).startswith("spec.output_uri: ")
        assert client.list() == []

        job = client.submit(**spec, output_uri=study.uri("models/new/job"))  # inside the root, new: accepted
        client.cancel(job.id)
    assert {info.key: info.sha256 for info in study.list("models/m/")} == before
    assert beside(root / "data") == [] and beside(tmp_path / "outside") == []


def never(*_):
    raise AssertionError("the engine is not reached: only the fetch is under test")


def test_adapter_uris_are_confined_and_bounded_before_anything_is_read(tmp_path: Path):
    from services.common.store import StoreRoots  # (new with the remedy)

    root = tmp_path / "adapters"
    tree = root / "tree"
    for n in range(30):
        (tree / f"d{n % 3}").mkdir(parents=True, exist_ok=True)
        (tree / f"d{n % 3}" / f"f{n}").write_bytes(b"x")
    roots = StoreRoots(file_roots=(root,), max_files=20)
    cache = AdapterCache(never, never, cache_dir=tmp_path / "cache", max_loaded=2, roots=roots)
    for uri in ("file:///", (tmp_path / "elsewhere").as_uri()):
        with pytest.raises(errors.PermissionDenied) as info:
            cache.fetch(uri)
        assert info.value.field == "uri"
    with pytest.raises(errors.ResourceExhausted):
        cache.fetch(tree.as_uri())
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    assert all(beside(d) == [] for d in tree.iterdir())


def test_load_adapter_writes_nothing_beside_the_adapter(generator_client, tiny_lora_dir, tmp_path: Path):
    adapter = shutil.copytree(tiny_lora_dir, tmp_path / "adapter")
    generator_client.load_adapter("row04", adapter.as_uri())
    try:
        assert beside(adapter) == []
    finally:
        generator_client.unload_adapter("row04")
