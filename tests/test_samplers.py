import hashlib
import subprocess
import sys
import threading
import time

import psutil
import pytest

from bench.record import RunRecord
from bench.samplers import CpuSampler, GpuSampler, Sampling, energy_j, label_phases, summarise
from bench.worker import summarise_samples


def spin(stop: threading.Event):
    """Keeps one core busy until `stop`: hashing a large buffer releases the GIL, as decoding does."""
    block = b"x" * 2**22
    while not stop.is_set():
        hashlib.sha256(block).digest()


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def test_cpu_sampler_reports_the_cpu_time_its_process_spent():
    """A spinning thread: the sampled figure is the process's own CPU time over the wall time
    since the last tick, whatever share of a core the machine left it."""
    me, stop = psutil.Process(), threading.Event()
    worker = threading.Thread(target=spin, args=(stop,))
    worker.start()
    try:
        sampler = CpuSampler()
        cpu0, wall0 = cpu_seconds(me), time.perf_counter()
        time.sleep(1.0)
        row = sampler.sample()
        truth = 100 * (cpu_seconds(me) - cpu0) / (time.perf_counter() - wall0)
    finally:
        stop.set()
        worker.join()
    assert truth > 5  # the thread ran
    assert row["proc_cpu_pct"] == pytest.approx(truth, rel=0.15, abs=5)
    assert row["rss_mb"] > 10 and row["threads"] >= 2


def test_cpu_sampler_counts_child_processes():
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        sampler = CpuSampler()
        proc = psutil.Process(child.pid)
        cpu0, wall0 = cpu_seconds(proc), time.perf_counter()
        time.sleep(0.8)
        row = sampler.sample()
        truth = 100 * (cpu_seconds(proc) - cpu0) / (time.perf_counter() - wall0)
    finally:
        child.kill()
        child.wait()
    assert truth > 5
    assert row["proc_cpu_pct"] >= 0.85 * truth - 5  # the child's share at least (this process sleeps)


class NoNvml:
    class NVMLError(Exception):
        pass

    def nvmlInit(self):
        raise self.NVMLError("NVML Shared Library Not Found")


def test_without_nvml_the_gpu_sampler_stands_aside(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", NoNvml())
    gpu = GpuSampler()
    assert not gpu.available and "NVML" in gpu.reason
    with Sampling([CpuSampler(), gpu], interval=0.1) as sampling:
        time.sleep(0.3)
    summary = summarise(sampling.rows)
    assert summary["gpu_util_mean"] is None and summary["gpu_mem_nvml_peak_mb"] is None
    assert summary["cpu_util_mean"] is not None


def test_summaries_pool_the_gpus():
    rows = [{"cpu_util": 10.0, "gpu0_util": 50, "gpu1_util": 100, "gpu0_mem_mb": 1000, "gpu1_mem_mb": 3000,
             "gpu0_power_w": 100.0, "gpu1_power_w": None},
            {"cpu_util": 30.0, "gpu0_util": 70, "gpu1_util": 80, "gpu0_mem_mb": 2000, "gpu1_mem_mb": 2500,
             "gpu0_power_w": 200.0, "gpu1_power_w": None}]
    s = summarise(rows)
    assert s["cpu_util_mean"] == pytest.approx(20.0)
    assert s["gpu_util_mean"] == pytest.approx(75.0)
    assert s["gpu_util_max"] == 100
    assert s["gpu_mem_nvml_peak_mb"] == 3000
    assert s["gpu_power_w_mean"] == pytest.approx(150.0)  # the GPU without a power reading is left out
    assert s["samples"] == 2


def test_summaries_are_taken_over_the_window_and_the_whole_run_apart():
    """Samples every 0.2 s of a process busy (100%) for its first 1.2 s and idle after: a window
    over the busy part reads busy, one over the rest idle, the whole run lies between."""
    rows = [{"t_s": round(0.2 * k, 1), "proc_cpu_pct": 100.0 if k <= 6 else 0.0, "cpu_util": 50.0, "rss_mb": 100.0,
             "threads": 4} for k in range(1, 13)]
    figures = {}
    for name, window in (("busy", [(0.0, 1.2)]), ("idle", [(1.2, 2.4)])):
        record = RunRecord()
        summarise_samples([dict(r) for r in rows], window, 0.2, record)
        figures[name] = record
    busy, idle = figures["busy"], figures["idle"]
    assert (busy.proc_cpu_pct_mean, idle.proc_cpu_pct_mean) == (100.0, 0.0)
    assert busy.run_proc_cpu_pct_mean == idle.run_proc_cpu_pct_mean == 50.0
    assert (busy.samples, idle.samples, busy.run_samples) == (6, 6, 12)


def test_each_sample_is_labelled_with_its_phase():
    rows = [{"t_s": t} for t in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)]
    label_phases(rows, [(1.0, 2.0), (2.5, 3.5)], interval=0.5)  # a sample covers the 0.5 s before it
    assert [r["phase"] for r in rows] == ["warmup", "warmup", "window", "window", "between", "window",
                                          "window", "after"]


def test_window_energy_comes_from_the_counters_between_the_windows_ends():
    rows = [{"t_s": t, "gpu0_energy_j": 100.0 * t, "gpu1_energy_j": 50.0 * t} for t in (0.0, 1.0, 2.0, 3.0, 4.0)]
    assert energy_j(rows, [(0.5, 1.5), (2.0, 3.25)]) == pytest.approx(150.0 * 2.25)
    assert energy_j(rows, [(3.5, 4.5)]) is None  # the counters end before the window does
    assert energy_j([{"t_s": 0.0, "cpu_util": 1.0}], [(0.0, 1.0)]) is None  # no counters: no GPU


def test_a_failing_sampler_is_named_and_the_others_go_on():
    class Broken:
        def sample(self):
            raise RuntimeError("the counter went away")

    with Sampling([Broken(), CpuSampler()], interval=0.1) as sampling:
        deadline = time.perf_counter() + 60
        while len(sampling.rows) < 2 and time.perf_counter() < deadline:  # two ticks, however busy the machine
            time.sleep(0.05)
    assert len(sampling.rows) >= 3 and all("cpu_util" in r for r in sampling.rows)
    assert sampling.errors == {"Broken": "RuntimeError: the counter went away"}
