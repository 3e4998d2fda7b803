"""The job manager without workers: idempotency, persistence, the restart policy, listing and cancelling.

The scheduler is not started here, so submitted jobs stay QUEUED; running workers are covered by the
integration tests (tests/integration/test_trainer_*.py).
"""

from __future__ import annotations

import pytest

from services.common.errors import AlreadyExists, InvalidArgument, NotFound
from services.trainer.jobs import JobManager, JobStore, ProgressReader
from services.trainer.recipe import build_recipe
from services.trainer.schema import JobSpec, JobState
from tests.fixtures.trainer import guanaco_rows, write_jsonl


@pytest.fixture
def spec(tmp_path, tiny_llama_dir, shared_dir, trainer_artifacts) -> JobSpec:
    uri = write_jsonl(trainer_artifacts, f"unit/{tmp_path.name}/train.jsonl", guanaco_rows(shared_dir, 4))
    return JobSpec(
        base_model=str(tiny_llama_dir),
        dataset_uri=uri,
        output_uri=(tmp_path / "out").as_uri(),
        recipe=build_recipe({"max_steps": 3}),
        labels={"mix": "mono"},
    )


@pytest.fixture
def manager(trainer_settings_factory) -> JobManager:
    return JobManager(trainer_settings_factory())


async def test_same_key_returns_the_same_job(manager, spec):
    first = await manager.submit(spec, "key-1")
    again = await manager.submit(spec, "key-1")
    assert first.id == again.id and first.state == JobState.QUEUED
    assert first.dataset["rows"] == 4 and first.progress.total_steps == 3
    jobs, _ = manager.list()
    assert [j.id for j in jobs] == [first.id]


async def test_same_key_with_another_spec_is_refused(manager, spec):
    await manager.submit(spec, "key-1")
    other = spec.model_copy(update={"recipe": build_recipe({"max_steps": 4})})
    with pytest.raises(AlreadyExists) as info:
        await manager.submit(other, "key-1")
    assert info.value.field == "idempotency_key"


async def test_an_output_in_use_by_a_live_job_is_refused(manager, spec):
    await manager.submit(spec, "key-1")
    with pytest.raises(InvalidArgument) as info:
        await manager.submit(spec.model_copy(update={"labels": {"x": "y"}}), "key-2")
    assert info.value.field == "spec.output_uri"


async def test_bad_input_is_refused_before_any_job_exists(manager, spec):
    with pytest.raises(NotFound) as info:
        await manager.submit(spec.model_copy(update={"dataset_uri": spec.output_uri + "/missing.jsonl"}), "k")
    assert info.value.field == "spec.dataset_uri"
    assert manager.list() == ([], "")


async def test_cancel_a_queued_job_then_resubmit_it(manager, spec):
    job = await manager.submit(spec, "key-1")
    cancelled = await manager.cancel(job.id)
    assert cancelled.state == JobState.CANCELLED and cancelled.finished_at is not None
    again = await manager.submit(spec, "key-1")
    assert (again.id, again.state) == (job.id, JobState.QUEUED)


async def test_unknown_job_is_not_found(manager):
    with pytest.raises(NotFound) as info:
        manager.get("job-nope")
    assert info.value.field == "job_id"
    with pytest.raises(NotFound):
        await manager.cancel("job-nope")


async def test_list_filters_by_state_and_labels_and_pages(manager, spec, tmp_path):
    ids = []
    for i in range(3):
        job = await manager.submit(spec.model_copy(update={"output_uri": (tmp_path / f"o{i}").as_uri()}), f"k{i}")
        ids.append(job.id)
    await manager.cancel(ids[1])
    assert [j.id for j in manager.list([JobState.QUEUED])[0]] == [ids[0], ids[2]]
    assert manager.list(labels={"mix": "other"})[0] == []
    page, token = manager.list(page_size=2)
    rest, end = manager.list(page_size=2, page_token=token)
    assert [j.id for j in page + rest] == ids and end == ""
    with pytest.raises(InvalidArgument) as info:
        manager.list(page_token="garbage")
    assert info.value.field == "page_token"


async def test_jobs_survive_a_restart(trainer_settings_factory, manager, spec):
    job = await manager.submit(spec, "key-1")
    reborn = JobManager(trainer_settings_factory())
    reborn.recover()
    assert reborn.get(job.id).model_dump() == job.model_dump()
    assert (await reborn.submit(spec, "key-1")).id == job.id  # the idempotency index is rebuilt too


def _mark_running(settings, job_id: str, step: int) -> None:
    store = JobStore(settings.jobs_dir)
    job = next(j for j in store.load_all() if j.id == job_id)
    job.state, job.worker_pid, job.progress.step, job.attempts = JobState.RUNNING, 2**22 + 7, step, 1
    store.save(job)


async def test_running_jobs_resume_after_a_restart_by_default(trainer_settings_factory, manager, spec):
    job = await manager.submit(spec, "key-1")
    _mark_running(manager.settings, job.id, step=2)
    reborn = JobManager(trainer_settings_factory())
    assert [j.id for j in reborn.recover()] == [job.id]
    recovered = reborn.get(job.id)
    assert recovered.state == JobState.QUEUED and "resumes from its last checkpoint" in recovered.error
    assert recovered.worker_pid is None
    assert JobStore(manager.settings.jobs_dir).load_all()[0].state == JobState.QUEUED  # persisted


async def test_with_fail_on_restart_running_jobs_fail_with_the_reason(trainer_settings_factory, manager, spec):
    job = await manager.submit(spec, "key-1")
    _mark_running(manager.settings, job.id, step=2)
    reborn = JobManager(trainer_settings_factory(resume_on_restart=False))
    reborn.recover()
    failed = reborn.get(job.id)
    assert failed.state == JobState.FAILED and "resubmit it with the same idempotency key" in failed.error
    assert (await reborn.submit(spec, "key-1")).state == JobState.QUEUED


def test_progress_reader_returns_only_complete_lines(tmp_path):
    path = tmp_path / "progress.jsonl"
    reader = ProgressReader(path)
    assert reader.read() == []
    path.write_text('{"event": "start", "step": 0}\n{"event": "log", "st')
    assert reader.read() == [{"event": "start", "step": 0}]
    with open(path, "a") as f:
        f.write('ep": 1}\nnot json\n')
    assert reader.read() == [{"event": "log", "step": 1}]
