"""How many CPUs this process may use: the ones it may run on, capped by its container's CPU limit.

`os.cpu_count()` is the node's count. In a Kubernetes pod with `limits.cpu: "2"` on a 64-core node, that
is 64, and 64 busy threads or processes would be throttled to two cores' worth of time. The limit is the
cgroup's CPU quota: `cpu.max` (cgroup v2: `<quota> <period>` or `max`), or `cpu.cfs_quota_us` and
`cpu.cfs_period_us` (cgroup v1).

    usable_cpus()        # e.g. 2 in such a pod; the affinity count where no quota is set
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")  # a container's own cgroup, as its cgroup namespace shows it


def cgroup_cpu_quota(root: Path = CGROUP) -> float | None:
    """CPUs' worth of time the cgroup at `root` may use (1.5 = one and a half); None without a quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def usable_cpus(root: Path = CGROUP) -> int:
    """The CPUs this process may run on, capped by its cgroup's quota rounded up; at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    quota = cgroup_cpu_quota(root)
    return max(1, min(count, math.ceil(quota))) if quota else max(1, count)
