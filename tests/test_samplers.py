import hashlib
import sys
import threading
import time

import pytest

from bench.record import RunRecord
from bench.samplers import CpuSampler, GpuSampler, Sampling, energy_j, label_phases, summarise
from bench.worker import summarise_samples


def spin(stop: threading.Event):
    """Keeps one core busy until `stop`: hashing a large buffer releases the GIL, as decoding does."""
    block = b"x" * 2**22
    while not stop.is_set():
        hashlib.sha256(block).digest()


def test_cpu_sampler_sees_a_busy_thread():
    stop = threading.Event()

    worker = threading.Thread(target=spin, args=(stop,))
    worker.start()
    try:
        with Sampling([CpuSampler()], interval=0.2) as sampling:
            time.sleep(1.2)
    finally:
        stop.set()
        worker.join()
    busy = [r["proc_cpu_pct"] for r in sampling.rows[1:]]
    assert len(sampling.rows) >= 5
    assert min(busy) > 50  # one spinning thread is about 100% of a core
    assert all(r["rss_mb"] > 10 and r["threads"] >= 2 for r in sampling.rows)


def test_cpu_sampler_counts_child_processes():
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        sampler = CpuSampler()
        time.sleep(0.8)
        row = sampler.sample()
    finally:
        child.kill()
        child.wait()
    assert row["proc_cpu_pct"] > 50


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
    """A thread busy for the first 1.2 s only: a window over that part sees a busy core, one over
    the rest an idle one, and the whole-run figure lies between."""
    stop = threading.Event()
    busy = threading.Thread(target=spin, args=(stop,))
    with Sampling([CpuSampler()], interval=0.2) as sampling:
        busy.start()
        time.sleep(1.2)
        stop.set()
        busy.join()
        time.sleep(1.2)
    end = sampling.rows[-1]["t_s"]
    figures = {}
    for name, window in (("busy", [(0.0, 1.2)]), ("idle", [(1.3, end)])):
        record = RunRecord()
        summarise_samples([dict(r) for r in sampling.rows], window, 0.2, record)
        figures[name] = record
    busy_cpu, idle_cpu = figures["busy"].proc_cpu_pct_mean, figures["idle"].proc_cpu_pct_mean
    assert busy_cpu > 60 and idle_cpu < 25
    assert figures["busy"].run_proc_cpu_pct_mean == figures["idle"].run_proc_cpu_pct_mean
    assert idle_cpu < figures["busy"].run_proc_cpu_pct_mean < busy_cpu
    assert 3 <= figures["busy"].samples < figures["busy"].run_samples


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
        time.sleep(0.35)
    assert len(sampling.rows) >= 3 and all("cpu_util" in r for r in sampling.rows)
    assert sampling.errors == {"Broken": "RuntimeError: the counter went away"}
