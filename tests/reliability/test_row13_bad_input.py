"""Row 13 (the trainer's and the generator's input): bad input answered INTERNAL instead of INVALID_ARGUMENT.
Reproduced before the fix against the real services: `ListJobs(states=[99])` (an enum number proto3 keeps),
a 300-character `base_model` (the file system's ENAMETOOLONG) and an adapter whose `adapter_config.json` has
wrong types (a TypeError inside PEFT) were INTERNAL; a full disk under the trainer's state was INTERNAL too,
and left a phantom QUEUED job behind. (Invalid UTF-8 and corrupt protobuf: test_row13_runtime_utf8.py.)

Remedies: `wire.state_from_proto` refuses numbers the enum does not name; `validation.resolve_base_model`
bounds a reference's length and turns what the file system refuses into INVALID_ARGUMENT (as `validate_spec`
does for the dataset URI); the generator checks an adapter's `adapter_config.json` types when it fetches it
(`adapters.check_adapter_config`). A job that cannot be saved is rolled back and answered RESOURCE_EXHAUSTED
(services/trainer/jobs.py), so its idempotency key stays free.

    .venv/bin/python -m pytest tests/reliability/test_row13_bad_input.py -q
"""

from __future__ import annotations

import json
import shutil

import pytest
from polyglot.v1 import trainer_pb2 as pb

from services.common import errors
from services.trainer.client import TrainerClient
from services.trainer.schema import JobState
from tests.fixtures.trainer import TINY_RECIPE
from tests.reliability.faults import FullDisk

LONG = "m" * 300


@pytest.fixture
def good_job(tiny_llama_dir, oasst_dataset_uri, tmp_path):
    return {
        "base_model": str(tiny_llama_dir),
        "dataset_uri": oasst_dataset_uri,
        "output_uri": (tmp_path / "out").as_uri(),
        "training": TINY_RECIPE,
    }


def test_bad_trainer_requests_are_invalid_argument_naming_the_field(trainer_service, good_job, tmp_path):
    cases = [
        ({"base_model": LONG}, "spec.base_model"),  # neither a hub id nor a path the file system takes
        ({"base_model": str(tmp_path / LONG)}, "spec.base_model"),
        ({"dataset_uri": (tmp_path / LONG / "train.jsonl").as_uri()}, "spec.dataset_uri"),
        ({"output_uri": (tmp_path / LONG).as_uri()}, "spec.output_uri"),
    ]
    with trainer_service() as address, TrainerClient(address) as client:
        for state in (99, -1, 0):
            with pytest.raises(errors.InvalidArgument) as info:
                client.call("ListJobs", pb.ListJobsRequest(states=[pb.JOB_STATE_QUEUED, state]))
            assert str(info.value).startswith("states: "), state
        for change, field in cases:
            with pytest.raises(errors.InvalidArgument) as info:
                client.submit(**{**good_job, **change})
            assert str(info.value).startswith(f"{field}: "), change
        assert client.list() == []


def test_a_full_state_disk_is_resource_exhausted_and_leaves_no_job(trainer_service, good_job, monkeypatch):
    """ENOSPC while saving `job.json` at submit: RESOURCE_EXHAUSTED, no job, and the idempotency key free
    for the retry once there is space again."""
    import services.trainer.jobs as jobs

    disk = FullDisk(monkeypatch, jobs, "job.json")
    with trainer_service() as address, TrainerClient(address) as client:
        with pytest.raises(errors.ResourceExhausted):
            client.submit(**good_job, idempotency_key="full-disk")
        assert client.list() == []
        disk.on = False
        job = client.submit(**good_job, idempotency_key="full-disk")
        assert [j.id for j in client.list()] == [job.id]
        assert client.cancel(job.id).state in (JobState.CANCELLED, JobState.RUNNING)


@pytest.mark.parametrize(
    "change",
    [{"r": "8"}, {"r": None}, {"lora_alpha": "sixteen"}, {"target_modules": 5}, {"peft_type": 7}],
    ids=["r-string", "r-null", "alpha-string", "modules-int", "type-int"],
)
def test_an_adapter_config_with_wrong_types_is_invalid_argument(generator_client, tiny_lora_dir, tmp_path, change):
    bad = shutil.copytree(tiny_lora_dir, tmp_path / "adapter")
    config_path = bad / "adapter_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), **change}))
    with pytest.raises(errors.InvalidArgument) as info:
        generator_client.load_adapter("row13", bad.as_uri())
    assert str(info.value).startswith("uri: ") and f"adapter_config.json: {next(iter(change))}:" in str(info.value)
    assert "row13" not in {entry.name for entry in generator_client.list_models().models}
