"""A stand-in for nvidia-ml-py's pynvml: NVML on a machine without a GPU, as the tests configure it.

Put this folder first on PYTHONPATH. FAKE_NVML_GPUS names the GPUs, comma-separated (default one
"NVIDIA GeForce RTX 2080 Ti"; empty: none), FAKE_NVML_DRIVER the driver version (default 550.54.14),
FAKE_NVML_CUDA the CUDA version the driver runs (default 12.4). Every GPU is idle: 0% busy, 30 W.
"""

import os
import time
from types import SimpleNamespace

NVML_CLOCK_SM = 1
NVML_TEMPERATURE_GPU = 0


class NVMLError(Exception):
    pass


def _names() -> list[str]:
    return [n.strip() for n in os.environ.get("FAKE_NVML_GPUS", "NVIDIA GeForce RTX 2080 Ti").split(",") if n.strip()]


def nvmlInit():
    pass


def nvmlShutdown():
    pass


def nvmlSystemGetDriverVersion():
    return os.environ.get("FAKE_NVML_DRIVER", "550.54.14")


def nvmlSystemGetCudaDriverVersion_v2():
    major, minor = os.environ.get("FAKE_NVML_CUDA", "12.4").split(".")
    return int(major) * 1000 + int(minor) * 10


def nvmlDeviceGetCount():
    return len(_names())


def nvmlDeviceGetHandleByIndex(i):
    return i


def nvmlDeviceGetName(h):
    return _names()[h]


def nvmlDeviceGetCudaComputeCapability(h):
    return 7, 5


def nvmlDeviceGetMemoryInfo(h):
    return SimpleNamespace(total=11 * 2**30, used=300 * 2**20)


def nvmlDeviceGetEnforcedPowerLimit(h):
    return 250_000


def nvmlDeviceGetPowerUsage(h):
    return 30_000


def nvmlDeviceGetUtilizationRates(h):
    return SimpleNamespace(gpu=0, memory=0)


def nvmlDeviceGetTotalEnergyConsumption(h):
    return int(time.time() * 30_000)  # 30 W since the epoch, in mJ


def nvmlDeviceGetClockInfo(h, clock):
    return 300


def nvmlDeviceGetTemperature(h, sensor):
    return 35
