import hashlib
import sys
import threading
import time

import pytest

from bench.samplers import CpuSampler, GpuSampler, Sampling, summarise


def test_cpu_sampler_sees_a_busy_thread():
    stop = threading.Event()
    block = b"x" * 2**22

    def spin():  # hashing a large buffer releases the GIL, as image decoding does
        while not stop.is_set():
            hashlib.sha256(block).digest()

    worker = threading.Thread(target=spin)
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
