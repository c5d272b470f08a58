"""The device's measured peak: a large matrix product in a given precision, TFLOP/s.

Run as `python -m bench.run.peak PRECISION [BACKEND]` in its own process (fresh device state), printing
JSON; the sweep runs it once per backend and precision before its points, for MFU (measure_peaks),
and keeps it for the machine's later sweeps. The product runs in the arithmetic the model's
convolutions use on this device (TF32 for float32 on GPUs that have it), which it reports as
`matmul_precision`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.plan.knobs import PRECISIONS


def measure(precision: str, backend: str = "tensorflow", windows: int = 5, seconds: float = 0.5) -> dict:
    """The best rate over several short windows: a peak is what the device can attain, and a
    single window is easily caught by another process's burst."""
    from bench.results import machine
    from bench.run import backends, devices

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    devices.prepare(backend, 1)
    import keras
    from keras import ops

    _, description = devices.setup(backend, 1)
    math = devices.matmul_precision(backend, precision, machine.compute_capability() if "GPU" in description else None)
    backends.of(backend).match_convolutions(math)  # the probe in the arithmetic the convolutions take
    n = 8192 if "GPU" in description else 2048
    a = keras.random.normal((n, n), dtype=PRECISIONS[precision])

    def product():
        return float(ops.convert_to_numpy(ops.cast(ops.matmul(a, a)[0, 0], "float32")))  # waits for the device

    product()
    product()  # warm-up: kernels chosen, memory allocated
    rates = []
    for _ in range(windows):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            product()
            count += 1
        rates.append(2 * n**3 * count / (time.perf_counter() - start) / 1e12)
    return {
        "precision": precision,
        "backend": backend,
        "n": n,
        "device": description,
        "matmul_precision": math,
        "tflops": max(rates),
    }


def measure_peaks(
    settings: set[tuple[str, str]],
    machine: str = "",
    timeout_s: float = 300,
    label: str = "",
    given: dict | None = None,
    cache_dir: Path | None = None,
) -> dict:
    """sweep.json's peak entries, each (backend, precision) probed in a fresh process:
    `peak_tflops` (backend -> precision -> TFLOP/s, None where the probe failed),
    `peak_matmul_precision` (the arithmetic it ran in) and `peak_errors` (why a probe failed). A peak
    is the machine's, not the sweep's: one probed on the machine of fingerprint `machine` is kept
    (devices.cache_root()/peaks.json, or `cache_dir`/peaks.json) under the GPUs it ran on (`label`: on a
    box of two models, each its own) and reused by its later sweeps there (a probe costs 10 s of a
    2-core machine's 6-minute quick), named with when it was measured in `peak_cached`. Each probe
    is given `given`, as a worker is."""
    from bench.run.devices import cache_root

    found = {"peak_tflops": {}, "peak_matmul_precision": {}, "peak_errors": {}, "peak_cached": {}}
    path = (cache_dir or cache_root()) / "peaks.json"
    with probing_alone(path.parent, machine):
        cache = json.loads(path.read_text()) if machine and path.is_file() else {}
        kept = cache.setdefault(f"{machine}/{label}" if label else machine, {})
        added = False
        for backend, precision in sorted(settings):
            probe = kept.get(f"{backend}/{precision}")
            why = None
            if probe:
                found["peak_cached"].setdefault(backend, {})[precision] = probe["measured"]
            else:
                probe, why = _peak_probe(backend, precision, timeout_s, dict(os.environ, **(given or {})))
                if machine and not why:
                    kept[f"{backend}/{precision}"] = {**probe, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
                    added = True
            found["peak_tflops"].setdefault(backend, {})[precision] = probe.get("tflops")
            found["peak_matmul_precision"].setdefault(backend, {})[precision] = probe.get("matmul_precision")
            if why:
                found["peak_errors"].setdefault(backend, {})[precision] = why
        if added:  # only a new probe is written: a sweep that took every peak from the cache leaves it be
            path.write_text(json.dumps(cache, indent=2))
    return found


@contextlib.contextmanager
def probing_alone(folder: Path, machine: str):
    """Held while a sweep probes: two sweeps' probes at once would each measure about half of the
    machine (and both pay for it), so the second waits, saying so, then reads the first's peaks. One
    lock a machine (a cache shared by a cluster's machines holds up none of the others); none where
    the cache folder cannot be written, as before there was one."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = os.open(folder / f"peaks.{machine or 'here'}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("waiting for another sweep's peak probe on this machine", file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)  # and with it the lock


def _peak_probe(backend: str, precision: str, timeout_s: float, env: dict) -> tuple[dict, str | None]:
    """(this module's result, run as a process, None) or ({}, why it failed)."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.run.peak", precision, backend],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
        )
        if out.returncode == 0:
            return json.loads(out.stdout.strip().splitlines()[-1]), None
        return {}, (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1][:300]
    except subprocess.TimeoutExpired:
        return {}, f"no result within {timeout_s:g} s"
    except (IndexError, json.JSONDecodeError):
        return {}, "the probe printed no result"


if __name__ == "__main__":
    print(json.dumps(measure(*sys.argv[1:3])))
