"""A container's quota, not the host's cores and memory: cgroup v2 and v1 trees as a container and a
Slurm job's cgroup write them, read into env.json and said in the report."""

import pytest

from bench.output import header
from bench.results import container


def tree(root, files: dict, own: str):
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    (root / "self-cgroup").write_text(own)


@pytest.mark.parametrize(
    "files, own, cpus, gb",
    [
        ({"cpu.max": "max 100000", "memory.max": "max"}, "0::/\n", None, None),  # v2, no limit
        ({"cpu.max": "400000 100000", "memory.max": str(8 * 2**30)}, "0::/\n", 4.0, 8.0),  # a v2 container
        (  # v2, a Slurm job's cgroup below a looser parent: the lowest limit holds
            {"cpu.max": "800000 100000", "job/cpu.max": "250000 100000", "job/memory.max": str(2**31)},
            "0::/job\n",
            2.5,
            2.0,
        ),
        (  # v1: the quota under cpu/, the memory limit under memory/; the host's path not mounted
            {
                "cpu/cpu.cfs_quota_us": "200000",
                "cpu/cpu.cfs_period_us": "100000",
                "memory/memory.limit_in_bytes": str(3 * 2**30),
            },
            "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n",
            2.0,
            3.0,
        ),
        (  # v1 without limits: -1 and a page-rounded 2**63
            {
                "cpu/cpu.cfs_quota_us": "-1",
                "cpu/cpu.cfs_period_us": "100000",
                "memory/memory.limit_in_bytes": "9223372036854771712",
            },
            "4:memory:/\n3:cpu,cpuacct:/\n",
            None,
            None,
        ),
    ],
)
def test_the_quota_is_the_lowest_limit_of_the_cgroups_above_the_process(tmp_path, monkeypatch, files, own, cpus, gb):
    tree(tmp_path, files, own)
    monkeypatch.setattr(container, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(container, "PROC_CGROUP", tmp_path / "self-cgroup")
    assert container.cpu_limit() == cpus and container.memory_limit_gb() == gb


def test_env_json_gives_the_cores_the_container_gives_and_the_report_says_so(tmp_path, monkeypatch):
    """env.json's cpu_cores is what the decode ceiling multiplies (bench/analyse/points.py)."""
    from bench.results import machine

    tree(tmp_path, {"cpu.max": "150000 100000", "memory.max": str(4 * 2**30)}, "0::/\n")
    monkeypatch.setattr(container, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(container, "PROC_CGROUP", tmp_path / "self-cgroup")
    monkeypatch.setattr(container, "cpus_allowed", lambda: None)  # no cpuset
    monkeypatch.setattr(machine.psutil, "cpu_count", lambda logical=True: 64)  # a 64-core host
    monkeypatch.setattr(container.os, "cpu_count", lambda: 64)
    env = machine.collect()
    assert (env["cpu_cores"], env["cpu_limit"], env["ram_limit_gb"]) == (2, 1.5, 4.0)
    assert header.machine(env)[0].endswith("; the container gives the run 2 cores (a limit of 1.5 CPUs) and 4 GB")
    assert not header.machine({**env, "cpu_limit": None, "ram_limit_gb": None})[0].endswith("GB")
    monkeypatch.setattr(container, "cpus_allowed", lambda: 1)  # a cpuset of one CPU (Slurm's, taskset's)
    assert (container.limits(64)["cpu_cores"], container.limits(64)["cpu_limit"]) == (1, 1)
