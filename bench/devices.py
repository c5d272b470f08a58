"""The devices a run trains on, per Keras backend, and how the model is spread over them.

With no GPU, `gpus=N` splits the CPU into N logical devices, so multi-device code runs (and is
tested) on any machine; this must happen before the backend starts its runtime, which is why
every run has a fresh process and `prepare` comes before Keras is imported.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.metadata
import os
import sys

TORCH_ONE_DEVICE = ("Keras 3 trains on one device with the torch backend (keras.distribution is "
                    "jax-only, tf.distribute TensorFlow's)")
FRAMEWORKS = ("tensorflow", "jax", "torch")


class _Without(importlib.abc.MetaPathFinder):
    """An import finder that finds neither `packages` nor their metadata, and everything else
    as `finder` does."""

    def __init__(self, finder, packages: set[str]):
        self.finder, self.packages = finder, packages

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.packages or not hasattr(self.finder, "find_spec"):
            return None
        return self.finder.find_spec(name, path, target)

    def find_distributions(self, context=importlib.metadata.DistributionFinder.Context()):
        if context.name in self.packages or not hasattr(self.finder, "find_distributions"):
            return iter(())
        return self.finder.find_distributions(context)

    def invalidate_caches(self):
        if hasattr(self.finder, "invalidate_caches"):
            self.finder.invalidate_caches()


def hide(packages) -> None:
    """Make installed packages look absent to this process: imports fail and
    importlib.util.find_spec finds nothing, as on a machine without them."""
    if packages:
        sys.meta_path[:] = [_Without(f, set(packages)) for f in sys.meta_path]


def prepare(backend: str, gpus: int, uses: tuple[str, ...] = ()) -> None:
    """Environment the backend reads when it starts: which backend, quiet start-up, logical
    CPU devices for jax, and no preallocation of a GPU's memory (so that memory figures show
    what a run needed rather than what the backend reserves).

    The frameworks the run does not use (neither its backend nor in `uses`) are made
    unimportable in this process: Keras and TensorFlow import JAX whenever it is installed,
    which costs each run a second and 100 MB and would make a run's figures depend on what
    else is installed."""
    hide(set(FRAMEWORKS) - {backend, *uses} - set(sys.modules))
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if backend == "jax":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        if gpus > 1:  # only the host platform's count: on a GPU machine jax trains on the GPUs
            flags = os.environ.get("XLA_FLAGS", "")
            os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={gpus}".strip()


def setup(backend: str, gpus: int):
    """(a context to build and compile the model in, a description of the devices)."""
    return {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}[backend](gpus)


def _described(gpus: int, kind: str) -> str:
    return f"{gpus} x {kind} (logical)" if gpus > 1 and kind == "CPU" else f"{gpus} x {kind}"


def _tensorflow(gpus: int):
    """tf.distribute.MirroredStrategy over the devices; GPUs get memory growth."""
    import tensorflow as tf

    physical = tf.config.list_physical_devices("GPU")
    for gpu in physical:
        tf.config.experimental.set_memory_growth(gpu, True)
    if physical:
        if gpus > len(physical):
            raise RuntimeError(f"gpus={gpus} asked, {len(physical)} GPU(s) visible to TensorFlow")
        names, kind = [f"/gpu:{i}" for i in range(gpus)], "GPU"
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        if gpus > 1:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * gpus)
        names, kind = [f"/cpu:{i}" for i in range(gpus)], "CPU"
    strategy = tf.distribute.get_strategy() if gpus == 1 else tf.distribute.MirroredStrategy(devices=names)
    return strategy.scope(), _described(gpus, kind)


def _jax(gpus: int):
    """keras.distribution.DataParallel over the devices: each takes a share of the batch."""
    import jax
    import keras

    devices = jax.devices()
    kind = "GPU" if devices[0].platform == "gpu" else devices[0].platform.upper()
    if gpus > len(devices):
        raise RuntimeError(f"gpus={gpus} asked, {len(devices)} device(s) visible to JAX")
    if gpus > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices[:gpus]))
    return contextlib.nullcontext(), _described(gpus, kind)


def _torch(gpus: int):
    import torch

    if gpus > 1:
        raise RuntimeError(TORCH_ONE_DEVICE)
    return contextlib.nullcontext(), _described(1, "GPU" if torch.cuda.is_available() else "CPU")


def allocator_peak_mb(backend: str) -> float | None:
    """Peak memory the backend's allocator held on the first GPU, or None without a GPU."""
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_logical_devices("GPU"):
            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    elif backend == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return stats["peak_bytes_in_use"] / 2**20
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated(0) / 2**20
    return None
