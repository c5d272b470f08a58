import hashlib
import subprocess
import sys
import threading
import time

import psutil
import pytest

from bench.results.record import RunRecord
from bench.run.samplers import CpuSampler, GpuSampler, Sampling, energy_j, label_phases, summarise
from bench.run.worker import summarise_samples


def spin(stop: threading.Event):
    """Keeps one core busy until `stop`: hashing a large buffer releases the GIL, as decoding does."""
    block = b"x" * 2**22
    while not stop.is_set():
        hashlib.sha256(block).digest()


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


@pytest.mark.slow
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


@pytest.mark.slow
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
    rows = [
        {
            "cpu_util": 10.0,
            "gpu0_util": 50,
            "gpu1_util": 100,
            "gpu0_mem_mb": 1000,
            "gpu1_mem_mb": 3000,
            "gpu0_power_w": 100.0,
            "gpu1_power_w": None,
        },
        {
            "cpu_util": 30.0,
            "gpu0_util": 70,
            "gpu1_util": 80,
            "gpu0_mem_mb": 2000,
            "gpu1_mem_mb": 2500,
            "gpu0_power_w": 200.0,
            "gpu1_power_w": None,
        },
    ]
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
    rows = [
        {
            "t_s": round(0.2 * k, 1),
            "proc_cpu_pct": 100.0 if k <= 6 else 0.0,
            "cpu_util": 50.0,
            "rss_mb": 100.0,
            "threads": 4,
        }
        for k in range(1, 13)
    ]
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
    assert [r["phase"] for r in rows] == [
        "warmup",
        "warmup",
        "window",
        "window",
        "between",
        "window",
        "window",
        "after",
    ]


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


class FakeNvml:
    """NVML on a node of four GPUs, GPU i busy at 10 x (i + 1)% and of compute capability 8.i,
    and one MIG slice of GPU 2."""

    NVML_CLOCK_SM = NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 4

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUUID(self, h):
        return f"GPU-{h}{h}{h}{h}-uuid"

    def nvmlDeviceGetHandleByUUID(self, uuid):
        if uuid == "MIG-slice-of-2":
            return 2
        raise self.NVMLError("not found")

    def nvmlDeviceGetUtilizationRates(self, h):
        return type("Rates", (), {"gpu": 10 * (h + 1)})()

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return 8, h

    def __getattr__(self, name):  # the other counters: absent on this stand-in
        def absent(*args):
            raise self.NVMLError(name)

        return absent


@pytest.mark.parametrize(
    "visible, expected",
    [
        (None, [10, 20, 30, 40]),  # every GPU, in NVML's order
        ("3", [40]),
        ("3,1", [40, 20]),  # indices
        ("GPU-3333-uuid", [40]),
        ("GPU-11", [20]),  # a UUID or a unique prefix of one
        ("MIG-slice-of-2", [30]),
        ("1,7,2", [20]),  # CUDA stops at the first entry that names no device
    ],
)
def test_the_gpu_sampler_samples_the_gpus_cuda_visible_devices_gives_the_run(monkeypatch, visible, expected):
    from bench.results import machine

    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    row = GpuSampler().sample()
    assert [row[f"gpu{i}_util"] for i in range(len(expected))] == expected and f"gpu{len(expected)}_util" not in row
    assert GpuSampler(devices=[0]).sample()["gpu0_util"] == expected[0]
    assert machine.compute_capability() == 8.0 + (expected[0] // 10 - 1) / 10


class FakeProcess:
    """A process on a fake clock whose CPU time grows at `busy` cores from `started` until `ended`,
    with the CPU time of the children it has reaped (`reaped`: when it reaps each)."""

    def __init__(self, pid, clock, started, busy, ended=float("inf"), children=()):
        self.pid, self.clock, self.started, self.busy, self.ended = pid, clock, started, busy, ended
        self.kids = list(children)

    def cpu(self, at=None):
        at = self.clock.now if at is None else at
        return self.busy * max(0.0, min(at, self.ended) - self.started)

    def cpu_times(self):
        import psutil

        if self.clock.now >= self.ended:
            raise psutil.NoSuchProcess(self.pid)
        reaped = sum(k.cpu(k.ended) for k in self.kids if k.ended <= self.clock.now)
        return type(
            "Times",
            (),
            {"user": self.cpu() * 0.75, "system": self.cpu() * 0.25, "children_user": reaped, "children_system": 0.0},
        )()

    def children(self, recursive=False):
        return [k for k in self.kids if k.started <= self.clock.now < k.ended]

    def oneshot(self):
        import contextlib

        return contextlib.nullcontext()

    def memory_full_info(self):
        return type("Full", (), {"rss": 3 * 2**20, "uss": 2**20, "pss": 2 * 2**20})()

    def num_threads(self):
        return 1


def test_loader_processes_that_start_or_end_between_ticks_count_the_cpu_they_used(monkeypatch):
    """Keras makes a new loader pool every epoch: a process new since the last tick read 0 (primed
    and read in one tick), and one that ended between ticks was never read at all."""
    import bench.run.samplers

    clock = type("Clock", (), {"now": 100.0, "__call__": lambda self: self.now})()
    pool = FakeProcess(2, clock, started=100.5, busy=0.8, ended=101.5)  # 0.8 s of CPU in all
    brief = FakeProcess(3, clock, started=102.2, busy=1.0, ended=102.6)  # never alive at a tick
    root = FakeProcess(1, clock, started=50.0, busy=0.5, children=[pool, brief])
    monkeypatch.setattr(bench.run.samplers.psutil, "Process", lambda pid=None: root)
    sampler = CpuSampler(pid=1, clock=clock)
    clock.now = 101.0  # the pool has run 0.5 s at 80%
    assert sampler.sample()["proc_cpu_pct"] == pytest.approx(50 + 40)
    clock.now = 102.0  # it ran 0.5 s more, then ended and was reaped
    assert sampler.sample()["proc_cpu_pct"] == pytest.approx(50 + 40)
    clock.now = 103.0
    row = sampler.sample()
    assert row["proc_cpu_pct"] == pytest.approx(50 + 40)  # the brief one's 0.4 s
    assert row["rss_mb"] == pytest.approx(2.0) and row["rss_measure"] == "pss"  # read again 2 s on: the root's 2 MB PSS


FORKED_READERS = """
import os, sys
buffer = bytearray(b"x") * (100 * 2**20)  # written: 100 MB resident in the parent
done, ready = os.pipe()
hold_r, hold_w = os.pipe()
for _ in range(3):
    if os.fork() == 0:  # a reader, as a forked loader worker is: it reads every page, writes none
        os.close(hold_w)
        sum(buffer[::4096])
        os.write(ready, b"r")
        os.read(hold_r, 1)  # until the parent ends
        os._exit(0)
os.read(done, 3)
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PSS is Linux's")
def test_forked_readers_of_a_shared_buffer_count_it_once_not_once_each():
    """A parent and three forked children that read its 100 MB buffer: RSS summed reads over
    400 MB; the tree's PSS is about 100 MB (plus four interpreters)."""
    import subprocess

    parent = subprocess.Popen(
        [sys.executable, "-c", FORKED_READERS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout.readline().strip() == "ready"
        row = CpuSampler(pid=parent.pid).sample()
        rss = sum(p.memory_info().rss for p in [psutil_process(parent.pid)] + psutil_process(parent.pid).children())
    finally:
        parent.kill()
        parent.wait()
    assert rss / 2**20 > 400  # what was summed before: the buffer once per process
    assert row["rss_measure"] == "pss"
    assert 100 <= row["rss_mb"] < 200


def psutil_process(pid):
    import psutil

    return psutil.Process(pid)


def test_the_sampling_threads_first_row_reads_the_machines_cpu():
    """psutil keeps its CPU interval per thread: primed only where the sampler was made, the
    sampling thread's first row read 0 while a core was busy."""
    import threading
    import time

    from bench.run.samplers import CpuSampler, Sampling

    done = threading.Event()

    def burn():
        while not done.is_set():
            pass

    worker = threading.Thread(target=burn)
    worker.start()
    try:
        with Sampling([CpuSampler()], 0.3) as sampling:
            while len(sampling.rows) < 1:
                time.sleep(0.05)
    finally:
        done.set()
        worker.join()
    assert sampling.rows[0]["cpu_util"] > 0
