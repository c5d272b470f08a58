"""The torch backend: one device (KERAS_TORCH_DEVICE or Keras's pick), torch.compile's caches, torch's
profiler (a chrome trace). torch is imported inside the functions only."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from bench.plan.backends import BACKENDS
from bench.run.backends import GPU_MEMORY_FRACTION_ENV

# Keras's trainer on torch (bench/run/timing.py) fetches the next batch right after the step before
# ends, before the step's begin hook: its marks are the epoch's begin and each step's end.
FETCH_IN_TRACE = False
FETCHES_BEFORE_STEP_HOOK = True
COMPILES_EAGER_OPS = False  # only torch.compile (jit_compile, xla=on) fills its cache

_CUDA12_PYPI = "2.10.0"  # the newest torch whose PyPI build is CUDA 12 (pip's report: nvidia-cudnn-cu12)
_CUDA12_INDEX = "https://download.pytorch.org/whl/cu126"


def prepare(gpus: int, hosts: int) -> None:
    """Where the GPUs are hidden on purpose (CUDA_VISIBLE_DEVICES=-1: --gpu cpu), Apple's MPS is
    hidden too: Keras would pick it, and a run labelled cpu would train on the Mac's GPU (--gpu mps
    files MPS runs under their own label). torch allocates as it goes."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "-1":
        os.environ.setdefault("KERAS_TORCH_DEVICE", "cpu")


def use_compile_cache(folder: str) -> None:
    """torch.compile's (Inductor's and Triton's) caches."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", folder)
    os.environ.setdefault("TRITON_CACHE_DIR", str(Path(folder) / "triton"))


def setup(gpus: int, hosts: int):
    """One device, in one process: Keras 3 spreads torch over none; its allocator capped where a cap
    is given. (scope, device kind)."""
    if gpus > 1 or hosts > 1:
        raise RuntimeError(BACKENDS["torch"].one_device)
    platform, index = _device()
    if platform == "gpu" and (fraction := os.environ.get(GPU_MEMORY_FRACTION_ENV)):  # a cap on its allocator
        import torch

        torch.cuda.set_per_process_memory_fraction(float(fraction), index)
    return contextlib.nullcontext(), platform.upper()


def _device() -> tuple[str, int]:
    """(platform, CUDA index) Keras's torch backend trains on: KERAS_TORCH_DEVICE first (cpu,
    mps, cuda:1), else cuda, then Apple's mps, then cpu, as Keras picks."""
    import torch

    asked = os.environ.get("KERAS_TORCH_DEVICE", "")
    if asked:
        kind, _, number = asked.partition(":")
        return ("gpu", int(number or 0)) if kind == "cuda" else (kind, 0)
    if torch.cuda.is_available():
        return "gpu", 0
    return ("mps", 0) if torch.backends.mps.is_available() else ("cpu", 0)


def spreads_over_hosts() -> bool:
    """Whether this Keras ships a distribution library for torch (read from its files, importing
    nothing; not in Keras 3.15): until then the descriptor's multi_host says why not."""
    import importlib.util

    keras = importlib.util.find_spec("keras")
    return bool(
        keras
        and keras.origin
        and (Path(keras.origin).parent / "src" / "backend" / "torch" / "distribution_lib.py").is_file()
    )


def no_device_started() -> bool:
    """CUDA is not initialised in this process: a fork cannot carry a device."""
    import torch

    return not torch.cuda.is_initialized()


def tf32_allowed() -> bool:
    import torch

    return torch.backends.cudnn.allow_tf32


def allocator_peak_mb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(0) / 2**20 if torch.cuda.is_available() else None


def where(count: int) -> dict:
    """Its version, the CUDA and cuDNN it was built with, its float32 matmul arithmetic, and the one
    device it trains on."""
    import torch

    facts = {
        "version": torch.__version__,
        "cuda": torch.version.cuda or "",
        "cudnn": str(torch.backends.cudnn.version() or "") if torch.cuda.is_available() else "",
        "matmul": f"{torch.get_float32_matmul_precision()} (cudnn tf32 {torch.backends.cudnn.allow_tf32})",
    }
    platform, first = _device()
    if platform == "gpu":
        return {**facts, "platform": "gpu", "devices": [torch.cuda.get_device_name(first)]}
    return {**facts, "platform": platform, "devices": [platform], "cudnn": ""}


def device_asked() -> str | None:
    """KERAS_TORCH_DEVICE (cpu, mps, cuda:1), or None where Keras picks."""
    return os.environ.get("KERAS_TORCH_DEVICE") or None


def kept_off_gpu() -> str | None:
    if os.environ.get("KERAS_TORCH_DEVICE", "cuda").split(":")[0] != "cuda":
        return f"unset KERAS_TORCH_DEVICE={os.environ['KERAS_TORCH_DEVICE']}, which keeps Keras's torch off the GPU"
    return None


def no_gpu_build(venv: int) -> str | None:
    return None


def gpu_install(venv: int) -> str:
    return (
        f"pip install --force-reinstall torch=={_CUDA12_PYPI} (PyPI's CUDA 12 build; or torch==2.13.0 "
        f"--index-url {_CUDA12_INDEX} where that index is reachable)"
    )


def start_profiler(out):
    """Starts torch's profiler on the CPU and, where there is one, CUDA: the session stop_profiler ends."""
    import torch

    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    session = torch.profiler.profile(activities=activities)
    session.__enter__()
    return session


def stop_profiler(session, out):
    """Ends the trace; (the top operations, "device" or "host", the chrome trace)."""
    session.__exit__(None, None, None)
    trace = Path(out) / "trace.json"
    session.export_chrome_trace(str(trace))
    return (*_top_ops(session.key_averages()), trace)


def _top_ops(averages) -> tuple[list[dict], str]:
    """torch's key_averages by self device time (CUDA kernels), else by self CPU time."""
    from bench.run.trace_ops import TOP_OPS, ranked

    device = any(getattr(a, "self_device_time_total", 0) > 0 for a in averages)
    key = "self_device_time_total" if device else "self_cpu_time_total"
    own = {a.key: getattr(a, key) * 1000.0 for a in averages}  # microseconds -> nanoseconds
    return ranked(own, TOP_OPS), "device" if device else "host"


def match_convolutions(math: str) -> None:
    """torch's matrix products skip TF32 by default where its convolutions use it: the peak probe
    follows the convolutions."""
    import torch

    if math in ("tf32", "float32"):
        torch.backends.cuda.matmul.allow_tf32 = math == "tf32"
