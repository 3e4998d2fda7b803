"""Submit-time checks of the base model, the output URI and the device count, each naming its field."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument, NotFound
from services.common.store import open_store
from services.trainer.recipe import build_recipe
from services.trainer.schema import JobSpec
from services.trainer.validation import PROBE_PREFIX, check_output_writable, resolve_base_model, validate_spec


def test_a_local_model_directory_resolves(tiny_llama_dir):
    assert resolve_base_model(str(tiny_llama_dir)).kind == "local"


def test_a_model_in_the_artifact_store_resolves(tmp_path, tiny_llama_dir):
    store = open_store(str(tmp_path / "store"))
    store.put_dir("models/tiny", tiny_llama_dir)
    ref = resolve_base_model(store.uri("models/tiny"))
    assert (ref.kind, ref.ref) == ("store", store.uri("models/tiny"))


@pytest.mark.parametrize(
    ("make_ref", "error"),
    [
        (lambda tmp: str(tmp / "no-such-dir"), NotFound),
        (lambda tmp: str(tmp), InvalidArgument),  # a directory, but no config.json
        (lambda tmp: (tmp / "empty-store").as_uri(), NotFound),
        (lambda tmp: "polyglot-test/definitely-not-a-model", InvalidArgument),  # offline, not cached
        (lambda tmp: "not a repo id!", InvalidArgument),
        (lambda tmp: "   ", InvalidArgument),
    ],
)
def test_unknown_base_models_are_refused_naming_the_field(tmp_path, monkeypatch, make_ref, error):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(error) as info:
        resolve_base_model(make_ref(tmp_path))
    assert info.value.field == "spec.base_model"


def test_a_writable_output_leaves_no_probe_behind(tmp_path):
    uri = (tmp_path / "out").as_uri()
    check_output_writable(uri)
    assert list(open_store(uri).list(PROBE_PREFIX)) == []


@pytest.mark.parametrize("uri", ["file:///proc/polyglot-cannot-write-here", "ftp://host/x", ""])
def test_unwritable_outputs_are_refused(uri):
    with pytest.raises(InvalidArgument) as info:
        check_output_writable(uri)
    assert info.value.field == "spec.output_uri"


def test_more_devices_than_gpus_is_refused(tmp_path, tiny_llama_dir):
    spec = JobSpec(
        base_model=str(tiny_llama_dir),
        dataset_uri=(tmp_path / "d.jsonl").as_uri(),
        output_uri=tmp_path.as_uri(),
        recipe=build_recipe(),
        num_devices=2,
    )
    with pytest.raises(InvalidArgument) as info:
        validate_spec(spec, cuda_devices=0)
    assert info.value.field == "spec.num_devices"
    with pytest.raises(InvalidArgument) as info:
        validate_spec(spec.model_copy(update={"num_devices": 3}), cuda_devices=8)
    assert info.value.field == "spec.hyperparameters.effective_batch_size"  # 64 does not split over 3
