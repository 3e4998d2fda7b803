"""services/common/cpus.py: a container's CPU limit, read from cgroup v2 or v1 files laid out as the kernel does."""

from __future__ import annotations

import os

import pytest

from services.common.cpus import cgroup_cpu_quota, usable_cpus
from services.lid.settings import LidSettings


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "max 100000\n"}, None),  # no limit
        ({"cpu.max": "150000 100000\n"}, 1.5),  # limits.cpu: 1500m
        ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4.0),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1, no limit
        ({"cpu.max": "garbage"}, None),
        ({}, None),  # no cgroup files at all (not in a container)
    ],
)
def test_the_cgroup_quota_in_cpus(tmp_path, files, quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(tmp_path) == quota


def test_usable_cpus_is_the_affinity_capped_by_the_quota_rounded_up(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(tmp_path) == affinity  # no quota
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU still runs one process
    assert usable_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{(affinity + 8) * 100000} 100000\n")  # a quota above the CPUs it may use
    assert usable_cpus(tmp_path) == affinity


def test_lid_workers_zero_means_the_usable_cpus(monkeypatch):
    monkeypatch.setenv("POLYGLOT_LID_WORKERS", "0")
    assert LidSettings().processes() == usable_cpus()
    monkeypatch.setenv("POLYGLOT_LID_WORKERS", "3")
    assert LidSettings().processes() == 3
