"""Each Keras backend's behaviour in a module of its own, every one with the same names (as Keras
keeps keras/src/backend/<name>/): its devices and spreading, where it trains, what gets it onto a
GPU, its compile cache, its profiler, its timing marks and its peak probe. `of(name)` chooses one;
no module imports its framework until a function needs it, so choosing costs nothing."""

from __future__ import annotations

import importlib
from types import ModuleType

from bench.plan.backends import BACKENDS

# A cap on the GPU memory a run's backend may take (gpubench fit --mem-limit-mb on a GPU): in MB for
# TensorFlow's logical device, as a fraction of the device for JAX's and torch's allocators.
GPU_MEMORY_ENV, GPU_MEMORY_FRACTION_ENV = "GPUBENCH_GPU_MEMORY_MB", "GPUBENCH_GPU_MEMORY_FRACTION"


def of(name: str) -> ModuleType:
    """The module of backend `name` (bench/run/backends/<name>.py), one of bench/plan/backends.py's."""
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r}: not one of {', '.join(BACKENDS)}")
    return importlib.import_module(f"{__name__}.{name}")
