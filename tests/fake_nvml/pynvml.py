"""A stand-in for nvidia-ml-py's pynvml: NVML on a machine without a GPU, as the tests configure it.

Put this folder first on PYTHONPATH (and on PATH for the stand-in nvidia-smi beside it). The machine
comes from the environment:
  FAKE_NVML_GPUS    the GPUs, comma-separated (default one "NVIDIA GeForce RTX 2080 Ti"; empty: none)
  FAKE_NVML_DRIVER  the driver version (default 550.54.14)
  FAKE_NVML_CUDA    the CUDA version the driver runs (default 12.4)
  FAKE_NVML_MIG     MIG slices of GPU 0, comma-separated profiles ("1g.10gb,1g.10gb"): GPU 0 is in MIG mode
  FAKE_NVML_PROCESSES  process ids computing on every GPU, comma-separated (default none)
  FAKE_NVML_MPS     1: those processes are CUDA MPS clients
  FAKE_NVML_FAIL    NVML functions that fail, comma-separated: nvmlInit fails as a container without
                    libnvidia-ml does; any other raises "Not Supported", as a card without that counter
Every GPU is idle: 0% busy, 30 W; a MIG slice reports no utilisation (NVML's own behaviour).
"""

import os
import time
from types import SimpleNamespace

NVML_CLOCK_SM = 1
NVML_TEMPERATURE_GPU = 0


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    def __str__(self):
        return "Not Supported"


class NVMLError_LibraryNotFound(NVMLError):
    def __str__(self):
        return "NVML Shared Library Not Found"


def _names() -> list[str]:
    return [n.strip() for n in os.environ.get("FAKE_NVML_GPUS", "NVIDIA GeForce RTX 2080 Ti").split(",") if n.strip()]


def _migs() -> list[str]:
    return [p.strip() for p in os.environ.get("FAKE_NVML_MIG", "").split(",") if p.strip()]


def _failing(name: str) -> None:
    if name in os.environ.get("FAKE_NVML_FAIL", "").split(","):
        raise NVMLError_LibraryNotFound() if name == "nvmlInit" else NVMLError_NotSupported()


def nvmlInit():
    _failing("nvmlInit")


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


def _card(h) -> int:
    return h[0] if isinstance(h, tuple) else h


def nvmlDeviceGetName(h):
    if isinstance(h, tuple):
        return f"{_names()[h[0]]} MIG {_migs()[h[1]]}"
    return _names()[h]


def nvmlDeviceGetUUID(h):
    return f"MIG-fake-{h[0]}-{h[1]}" if isinstance(h, tuple) else f"GPU-fake-{h}"


def nvmlDeviceGetMigMode(h):
    on = int(h == 0 and bool(_migs()))
    return on, on


def nvmlDeviceGetMaxMigDeviceCount(h):
    return len(_migs()) if h == 0 else 0


def nvmlDeviceGetMigDeviceHandleByIndex(h, k):
    if k >= len(_migs()):
        raise NVMLError_NotSupported()
    return (h, k)


def nvmlDeviceGetCudaComputeCapability(h):
    _failing("nvmlDeviceGetCudaComputeCapability")
    name = _names()[_card(h)]
    return (10, 0) if "B200" in name else (9, 0) if "H100" in name else (7, 5)


def nvmlDeviceGetMemoryInfo(h):
    _failing("nvmlDeviceGetMemoryInfo")
    return SimpleNamespace(total=(10 if isinstance(h, tuple) else 11) * 2**30, used=300 * 2**20)


def nvmlDeviceGetEnforcedPowerLimit(h):
    _failing("nvmlDeviceGetEnforcedPowerLimit")
    return 250_000


def nvmlDeviceGetPowerUsage(h):
    _failing("nvmlDeviceGetPowerUsage")
    return 30_000


def nvmlDeviceGetUtilizationRates(h):
    _failing("nvmlDeviceGetUtilizationRates")
    if isinstance(h, tuple) or (h == 0 and _migs()):
        raise NVMLError_NotSupported()
    return SimpleNamespace(gpu=0, memory=0)


def nvmlDeviceGetTotalEnergyConsumption(h):
    _failing("nvmlDeviceGetTotalEnergyConsumption")
    return int(time.time() * 30_000)  # 30 W since the epoch, in mJ


def nvmlDeviceGetClockInfo(h, clock):
    return 300


def nvmlDeviceGetTemperature(h, sensor):
    return 35


def nvmlDeviceGetHandleByUUID(uuid):
    for i in range(len(_names())):
        for h in [i] + [(i, k) for k in range(nvmlDeviceGetMaxMigDeviceCount(i))]:
            if nvmlDeviceGetUUID(h) == (uuid.decode() if isinstance(uuid, bytes) else uuid):
                return h
    raise NVMLError_NotSupported()


def _processes(mps: bool) -> list:
    pids = [int(p) for p in os.environ.get("FAKE_NVML_PROCESSES", "").split(",") if p.strip()]
    through_mps = os.environ.get("FAKE_NVML_MPS") == "1"
    return [SimpleNamespace(pid=p, usedGpuMemory=2**30) for p in pids] if through_mps == mps else []


def nvmlDeviceGetComputeRunningProcesses(h):
    _failing("nvmlDeviceGetComputeRunningProcesses")
    return _processes(mps=False)


def nvmlDeviceGetMPSComputeRunningProcesses(h):
    _failing("nvmlDeviceGetMPSComputeRunningProcesses")
    return _processes(mps=True)
