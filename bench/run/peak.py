"""The device's measured peak: a large matrix product in a given precision, TFLOP/s.

Run as `python -m bench.run.peak PRECISION [BACKEND]` in its own process (fresh device state), printing
JSON; the sweep runs it once per backend and precision before its points, for MFU. The product
runs in the arithmetic the model's convolutions use on this device (TF32 for float32 on GPUs
that have it), which it reports as `matmul_precision`.
"""

from __future__ import annotations

import json
import os
import sys
import time

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


if __name__ == "__main__":
    print(json.dumps(measure(*sys.argv[1:3])))
