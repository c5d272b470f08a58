"""The device's measured peak: a large matrix product in a given precision, TFLOP/s.

Run as `python -m bench.peak PRECISION` in its own process (fresh device state), printing
JSON; the sweep runs it once per precision before its points, for MFU.
"""

from __future__ import annotations

import json
import os
import sys
import time

DTYPES = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


def measure(precision: str, seconds: float = 1.0) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    from keras import ops

    from bench import devices

    _, description = devices.setup(1)
    n = 8192 if "GPU" in description else 1024
    a = keras.random.normal((n, n), dtype=DTYPES[precision])

    def product():
        return float(ops.convert_to_numpy(ops.cast(ops.matmul(a, a)[0, 0], "float32")))  # waits for the device

    product()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        product()
        count += 1
    elapsed = time.perf_counter() - start
    return {"precision": precision, "n": n, "device": description, "tflops": 2 * n**3 * count / elapsed / 1e12}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
