"""CPU (psutil) and GPU (NVML) samples taken in a background thread while a run trains."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import psutil

from bench.plan.knobs import SAMPLE_INTERVAL_S


class CpuSampler:
    """System utilisation per core and in total, and the CPU, memory and threads of a process
    tree (the worker and its loader processes).

    Memory is the tree's PSS where the platform has it (Linux): each shared page split among the
    processes that share it, so forked loader workers do not count their parent's pages once each;
    else USS (pages a process alone holds), else RSS. Each sample says which (`rss_measure`). PSS
    walks a process's page tables (about 3 ms a process, against 0.2 ms for RSS), so it is read at
    most every MEMORY_EVERY_S and the samples between repeat it: the sampler stays light."""

    MEMORY_EVERY_S = 2.0

    def __init__(self, pid: int | None = None, clock=time.perf_counter):
        self.root = psutil.Process(pid or os.getpid())
        self.procs: dict[int, psutil.Process] = {}
        self.clock = clock
        self._memory_at, self._memory_mb, self._measure = float("-inf"), 0.0, ""
        psutil.cpu_percent(percpu=True)  # the first call only starts the interval (in this thread)
        self.last_tick, self._cpu_s = clock(), self._cpu_seconds()

    def _tree(self) -> list[psutil.Process]:
        """The tree's processes, each Process object kept across ticks."""
        try:
            current = [self.root] + self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            current = []
        self.procs = {proc.pid: self.procs.get(proc.pid, proc) for proc in current}
        return list(self.procs.values())

    def _cpu_seconds(self) -> float:
        """CPU seconds the tree has used: each live process's own and that of the children it
        has reaped. A process that starts and ends between two ticks is counted once its parent
        reaps it, and one that starts since the last tick from its start (Keras makes a new loader
        pool every epoch): a per-process cpu_percent would read 0 for both."""
        total = 0.0
        for proc in self._tree():
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:  # ended: its parent's children times take it in once reaped
                continue
            total += t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
        return total

    @staticmethod
    def _memory(proc: psutil.Process) -> tuple[float, str]:
        """(bytes, measure): PSS where the platform reports it, else USS, else RSS."""
        try:
            full = proc.memory_full_info()
        except (psutil.AccessDenied, AttributeError, NotImplementedError):
            return proc.memory_info().rss, "rss"
        for measure in ("pss", "uss"):
            if hasattr(full, measure):
                return getattr(full, measure), measure
        return full.rss, "rss"

    def sample(self) -> dict:
        """One tick's row: system CPU per core, and the process tree's CPU, memory and threads."""
        cores = psutil.cpu_percent(percpu=True)
        row = {"cpu_util": float(np.mean(cores))}
        row.update({f"cpu{i}_util": c for i, c in enumerate(cores)})
        cpu = rss = threads = 0.0
        measures = set()
        now, cpu_s = self.clock(), self._cpu_seconds()
        read_memory = now - self._memory_at >= self.MEMORY_EVERY_S
        if now > self.last_tick:  # never below 0: a process that leaves the tree unreaped takes its time along
            cpu = max(0.0, 100.0 * (cpu_s - self._cpu_s) / (now - self.last_tick))
        self.last_tick, self._cpu_s = now, cpu_s
        for proc in self._tree():
            try:
                with proc.oneshot():
                    if read_memory:
                        memory, measure = self._memory(proc)
                        rss += memory
                        measures.add(measure)
                    threads += proc.num_threads()
            except psutil.NoSuchProcess:  # a loader process ended between listing and reading
                continue
        if read_memory:
            self._memory_at, self._memory_mb, self._measure = now, rss / 2**20, "+".join(sorted(measures))
        row.update(
            proc_cpu_pct=cpu,
            rss_mb=self._memory_mb,
            rss_measure=self._measure,
            threads=threads,
            sys_mem_used_mb=psutil.virtual_memory().used / 2**20,
        )
        return row


class GpuSampler:
    """Per-GPU utilisation, memory, power, energy, SM clock and temperature from NVML. The energy
    counter (joules since the driver loaded, Volta and later) gives a window's energy exactly,
    where sampled power would only estimate it. `available`
    is False, and `reason` says why, on a machine without the driver or a GPU."""

    def __init__(self, devices: list[int] | None = None):
        """`devices`: the run's device numbers as CUDA numbers them in this process (after
        CUDA_VISIBLE_DEVICES), mapped to NVML's (env.visible_handles); None for every one."""
        from bench.results.machine import visible_handles

        self.handles = []
        self.reason = ""
        try:
            import pynvml

            pynvml.nvmlInit()
            visible = visible_handles(pynvml)
            wanted = range(len(visible)) if devices is None else [d for d in devices if d < len(visible)]
            self.handles = [visible[i] for i in wanted]
            self.nvml = pynvml
            if not self.handles:
                self.reason = "NVML found no GPU"
        except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self.reason = f"NVML unavailable: {type(e).__name__}: {e}".splitlines()[0]

    @property
    def available(self) -> bool:
        """Whether NVML found the run's GPUs to sample; `reason` says why not."""
        return bool(self.handles)

    def _read(self, fn, *args):
        try:
            return fn(*args)
        except self.nvml.NVMLError:  # a counter this GPU does not expose
            return None

    def sample(self) -> dict:
        """One tick's row: each GPU's readings, None for a counter it does not expose."""
        nv = self.nvml
        row = {}
        for i, h in enumerate(self.handles):
            power_mw, energy_mj = (
                self._read(f, h) for f in (nv.nvmlDeviceGetPowerUsage, nv.nvmlDeviceGetTotalEnergyConsumption)
            )
            util, memory = self._read(nv.nvmlDeviceGetUtilizationRates, h), self._read(nv.nvmlDeviceGetMemoryInfo, h)
            row.update(
                {
                    f"gpu{i}_util": None if util is None else util.gpu,
                    f"gpu{i}_mem_mb": None if memory is None else memory.used / 2**20,
                    f"gpu{i}_power_w": None if power_mw is None else power_mw / 1000.0,
                    f"gpu{i}_energy_j": None if energy_mj is None else energy_mj / 1000.0,
                    f"gpu{i}_sm_clock_mhz": self._read(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
                    f"gpu{i}_temp_c": self._read(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
                }
            )
        return row


class Sampling:
    """Ticks every sampler each `interval` seconds in one daemon thread; use as a context."""

    def __init__(self, samplers, interval: float = SAMPLE_INTERVAL_S):
        self.samplers = [s for s in samplers if getattr(s, "available", True)]
        self.interval = interval
        self.rows: list[dict] = []
        self.errors: dict[str, str] = {}  # sampler -> its first error: it failed, the others went on
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gpubench-sampler", daemon=True)

    def _tick(self):
        row = {"t_s": time.perf_counter() - self.t0}
        for sampler in self.samplers:
            try:
                row.update(sampler.sample())
            except Exception as e:  # a sampler that fails leaves its columns empty, not the others'
                self.errors.setdefault(type(sampler).__name__, f"{type(e).__name__}: {e}".splitlines()[0][:200])
        self.rows.append(row)

    def _loop(self):
        psutil.cpu_percent(percpu=True)  # psutil's CPU interval is per thread: start this one's
        while not self._stop.wait(self.interval):
            self._tick()

    def __enter__(self):
        self.t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._tick()  # a last sample, so even a short run has one


def _stats(rows: list[dict], columns: list[str]) -> np.ndarray:
    values = [r[c] for r in rows for c in columns if r.get(c) is not None]
    return np.asarray(values, dtype=float)


def label_phases(rows: list[dict], window: list[tuple[float, float]], interval: float) -> None:
    """Each sample's `phase`, by the middle of the interval it covers: `warmup` before the
    window, `window` inside one of its spans (seconds since sampling began), `between` in the
    validation and checkpoints between them, `after` once training ended."""
    for row in rows:
        t = row["t_s"] - interval / 2
        if not window or t < window[0][0]:
            row["phase"] = "warmup"
        elif any(start <= t <= end for start, end in window):
            row["phase"] = "window"
        else:
            row["phase"] = "between" if t <= window[-1][1] else "after"


def energy_j(rows: list[dict], spans: list[tuple[float, float]]) -> float | None:
    """Joules all GPUs drew over the spans, from the energy counters read at each sample,
    interpolated to the spans' ends; None without counters or samples on both sides."""
    columns = sorted({c for r in rows for c in r if c.startswith("gpu") and c.endswith("_energy_j")})
    if not columns or not spans:
        return None
    total = 0.0
    for column in columns:
        points = [(r["t_s"], r[column]) for r in rows if r.get(column) is not None]
        if len(points) < 2 or points[0][0] > spans[0][0] or points[-1][0] < spans[-1][1]:
            return None
        t, joules = np.array(points).T
        total += sum(float(np.interp(end, t, joules) - np.interp(start, t, joules)) for start, end in spans)
    return total


def summarise(rows: list[dict]) -> dict:
    """Mean, p90 and max of the time series, as record columns; GPU figures pool the GPUs."""
    out = {}
    gpu_cols = sorted({c for r in rows for c in r if c.startswith("gpu")})

    def cols(suffix):
        return [c for c in gpu_cols if c.endswith(suffix)]

    wanted = {
        "cpu_util": (["cpu_util"], ("mean", "p90", "max")),
        "proc_cpu_pct": (["proc_cpu_pct"], ("mean", "p90", "max")),
        "rss": (["rss_mb"], ("peak_mb",)),
        "threads": (["threads"], ("max",)),
        "gpu_util": (cols("_util"), ("mean", "p90", "max")),
        "gpu_mem_nvml": (cols("_mem_mb"), ("peak_mb",)),
        "gpu_power_w": (cols("_power_w"), ("mean", "max")),
        "gpu_sm_clock_mhz": (cols("_sm_clock_mhz"), ("mean",)),
        "gpu_temp_c": (cols("_temp_c"), ("max",)),
    }
    for name, (columns, stats) in wanted.items():
        values = _stats(rows, columns)
        for stat in stats:
            key = f"{name}_{stat}"
            if not len(values):
                out[key] = None
            elif stat == "mean":
                out[key] = float(values.mean())
            elif stat == "p90":
                out[key] = float(np.percentile(values, 90))
            else:  # max, peak_mb
                out[key] = float(values.max())
    out["samples"] = len(rows)
    out["rss_measure"] = next((r["rss_measure"] for r in rows if r.get("rss_measure")), None)
    return out
