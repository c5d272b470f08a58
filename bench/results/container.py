"""The cores and memory a container (or a Slurm job's cgroup, or taskset) gives this process, not
the host's: psutil counts the host's, so a 4-core quota on a 64-core host would read as 64 cores
to decode with. cgroup v2 (cpu.max, memory.max), then v1 (cpu.cfs_quota_us over cpu.cfs_period_us,
memory.limit_in_bytes), each the lowest limit from this process's cgroup up to the root; the
CPUs this process may run on (sched_getaffinity: a cpuset) bound them too."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")  # this process's cgroup in each hierarchy
NO_LIMIT_BYTES = 2**60  # v1 writes "no limit" as a page-rounded 2**63 - 1


def _own_paths(proc_cgroup: str) -> dict[str, str]:
    """/proc/self/cgroup as controller -> the process's cgroup path ('' for v2's unified one)."""
    paths = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path.strip("/")
    return paths


def _dirs(top: Path, path: str) -> list[Path]:
    """The cgroup folders from the process's own up to `top`, those that exist (in a container the
    host's path may not be mounted: then `top` is the container's own)."""
    parts = [p for p in path.split("/") if p]
    return [d for d in (top.joinpath(*parts[:k]) for k in range(len(parts), -1, -1)) if d.is_dir()]


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def cpu_limit() -> float | None:
    """The CPUs the cgroup quota allows (2.5 for 250 ms of every 100 ms), or None without a quota."""
    root, own = CGROUP_ROOT, _own_paths(_read(PROC_CGROUP))
    found = []
    for d in _dirs(root, own.get("", "")):  # v2: "max 100000" or "250000 100000"
        quota, _, period = _read(d / "cpu.max").partition(" ")
        if quota.isdigit() and period.strip().isdigit():
            found.append(int(quota) / int(period))
    for top in (root / "cpu", root / "cpu,cpuacct"):  # v1: -1 for none
        for d in _dirs(top, own.get("cpu", "")):
            quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
            if quota.isdigit() and period.isdigit() and int(quota) > 0:
                found.append(int(quota) / int(period))
    return min(found) if found else None


def memory_limit_gb() -> float | None:
    """The memory the cgroup allows, in GiB, or None without a limit."""
    root, own = CGROUP_ROOT, _own_paths(_read(PROC_CGROUP))
    found = [int(v) for d in _dirs(root, own.get("", "")) if (v := _read(d / "memory.max")).isdigit()]
    found += [
        int(v)
        for d in _dirs(root / "memory", own.get("memory", ""))
        if (v := _read(d / "memory.limit_in_bytes")).isdigit() and int(v) < NO_LIMIT_BYTES
    ]
    return round(min(found) / 2**30, 1) if found else None


def cpus_allowed() -> int | None:
    """The CPUs this process may run on where fewer than the host's (a cpuset: Slurm's, taskset's), else None."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return allowed if allowed and allowed < (os.cpu_count() or 0) else None


def limits(host_cores: int | None) -> dict:
    """env.json's figures of what the container gives: `cpu_limit`, the CPUs the run may use (the
    quota or the cpuset, the lower), `cpu_cores`, the cores it decodes with (the host's physical
    cores within that limit, rounded up: 2.5 CPUs of quota keep three cores part busy), and
    `ram_limit_gb`; None for no limit."""
    bounds = [b for b in (cpu_limit(), cpus_allowed()) if b]
    limit = min(bounds) if bounds else None
    cores = min(n for n in (host_cores, math.ceil(limit) if limit else None, os.cpu_count(), 1024) if n)
    return {"cpu_cores": cores, "cpu_limit": limit, "ram_limit_gb": memory_limit_gb()}
