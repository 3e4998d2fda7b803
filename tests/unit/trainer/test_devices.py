"""Device allocation for concurrent jobs: disjoint GPU slices, a CPU thread budget, and the device setting."""

from __future__ import annotations

import pytest

from services.trainer.devices import DevicePool, build_pool, resolve_kind, visible_gpus


def test_gpu_jobs_get_disjoint_slices_of_the_services_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,5,7")  # the pod's GPUs, as its device plugin numbered them
    pool = build_pool(device="auto", cuda_device_count=4, max_concurrent_jobs=4, cpu_threads=16, torch_threads=None)
    two, one = pool.acquire("a", 2), pool.acquire("b", 1)
    assert (two.gpus, one.gpus) == (("2", "3"), ("5",))
    assert pool.acquire("c", 2) is None  # one GPU left: the job waits
    assert two.env()["CUDA_VISIBLE_DEVICES"] == "2,3" and two.env()["POLYGLOT_TRAINER_DEVICE"] == "cuda"
    assert two.threads == 4  # 16 CPU threads over 4 concurrent jobs
    pool.release("a")
    assert pool.acquire("c", 2).gpus == ("2", "3") and pool.free_gpus() == ["7"]
    assert pool.acquire("b", 1) is one  # asking again for a running job returns its allocation


def test_cpu_jobs_share_the_thread_budget_and_see_no_gpu():
    pool = build_pool(device="cpu", cuda_device_count=8, max_concurrent_jobs=2, cpu_threads=2, torch_threads=None)
    first, second = pool.acquire("a", 1), pool.acquire("b", 1)
    assert (first.threads, second.threads, pool.free_threads()) == (1, 1, 0)
    assert pool.acquire("c", 1) is None
    env = first.env()
    assert (env["POLYGLOT_TRAINER_DEVICE"], env["CUDA_VISIBLE_DEVICES"], env["OMP_NUM_THREADS"]) == ("cpu", "", "1")
    pool.release("a")
    assert pool.acquire("c", 1).threads == 1


def test_a_thread_count_above_the_budget_still_runs_alone():
    pool = DevicePool(kind="cpu", gpus=(), cpu_threads=2, threads_per_job=8)
    assert pool.acquire("a", 1).threads == 2 and pool.acquire("b", 1) is None


def test_the_device_setting_decides_over_what_torch_sees():
    assert resolve_kind("auto", 2) == "cuda" and resolve_kind("auto", 0) == "cpu"
    assert resolve_kind("cpu", 2) == "cpu" and resolve_kind("cuda", 1) == "cuda"
    with pytest.raises(RuntimeError, match="no GPU"):
        resolve_kind("cuda", 0)


def test_visible_gpus_without_cuda_visible_devices_are_all_of_them(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpus(3) == ("0", "1", "2")
