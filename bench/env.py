"""The machine and software a sweep ran on (env.json), and the GPU label results file under."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from pathlib import Path

import psutil


def nvml_gpus() -> tuple[list[dict], str, str]:
    """(GPUs, driver version, reason when there are none) from NVML; never raises."""
    try:
        import pynvml

        pynvml.nvmlInit()
        driver = pynvml.nvmlSystemGetDriverVersion()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            gpus.append({
                "index": i,
                "name": pynvml.nvmlDeviceGetName(h),
                "memory_mb": pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**20,
                "power_limit_w": pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0,
            })
        pynvml.nvmlShutdown()
        return gpus, str(driver), "" if gpus else "NVML found no GPU"
    except Exception as e:
        return [], "", f"NVML unavailable: {type(e).__name__}: {e}".splitlines()[0]


def gpu_label(name: str) -> str:
    """'NVIDIA GeForce RTX 2080 Ti' -> '2080ti', 'NVIDIA H200' -> 'h200',
    'NVIDIA GeForce GTX 1060 6GB' -> 'gtx1060', 'Tesla V100-SXM2-16GB' -> 'v100'."""
    words = re.split(r"[\s\-_]+", name.lower())
    for i, word in enumerate(words):
        if re.search(r"\d", word) and word not in ("nvidia",):
            label = re.sub(r"[^a-z0-9]", "", word)
            if i + 1 < len(words) and words[i + 1] in ("ti", "super"):
                label += words[i + 1]
            if i > 0 and words[i - 1] == "gtx":
                label = "gtx" + label
            return label
    return re.sub(r"[^a-z0-9]", "", name.lower()) or "gpu"


def auto_label() -> str:
    gpus, _, _ = nvml_gpus()
    return gpu_label(gpus[0]["name"]) if gpus else "cpu"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def tensorflow_build() -> dict:
    """CUDA and cuDNN versions TensorFlow was built with (empty for a CPU build)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # its start-up chatter is no use here
    try:
        import tensorflow as tf

        info = tf.sysconfig.get_build_info()
        return {"cuda": info.get("cuda_version", ""), "cudnn": info.get("cudnn_version", "")}
    except ImportError:
        return {"cuda": "", "cudnn": ""}


def collect() -> dict:
    gpus, driver, reason = nvml_gpus()
    return {
        "gpus": gpus,
        "gpu_count": len(gpus),
        "gpu_note": reason,
        "driver": driver,
        **tensorflow_build(),
        "cpu": _cpu_model(),
        "cpu_threads": psutil.cpu_count(logical=True),
        "cpu_cores": psutil.cpu_count(logical=False),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "jax_cuda": _version("jax-cuda12-plugin") or _version("jax-cuda13-plugin"),
        "torch": _version("torch"),  # a "+cpu" suffix marks a CPU-only build
        "gpubench": _version("gpubench"),
        "commit": _git_commit(),
    }
