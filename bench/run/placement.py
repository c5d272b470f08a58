"""Which device each framework of a run is placed on, where Keras's own choice is not the whole
story: KERAS_TORCH_DEVICE decides torch's (cpu, mps, cuda:1), and TensorFlow imported by a pipeline
beside jax or torch is kept off the GPU that the backend trains on."""

from __future__ import annotations

import importlib.abc
import os
import sys


def torch_device() -> tuple[str, int]:
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


def sampled(backend: str, gpus: int) -> list[int]:
    """The CUDA numbers of the GPUs a run trains on, for the sampler: KERAS_TORCH_DEVICE=cuda:k's
    one for torch, else the first `gpus`."""
    asked = os.environ.get("KERAS_TORCH_DEVICE", "")
    if backend == "torch" and asked.startswith("cuda"):
        return [int(asked.partition(":")[2] or 0)]
    return list(range(gpus))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs `then(module)` once `name` has been imported, by whoever imports it."""

    def __init__(self, name: str, then):
        self.name, self.then = name, then

    def find_spec(self, name, path=None, target=None):
        if name != self.name:
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec and spec.loader:
            run, then = spec.loader.exec_module, self.then
            spec.loader.exec_module = lambda module: (run(module), then(module))
        return spec


def keep_tensorflow_off_gpu() -> None:
    """TensorFlow, imported by a pipeline (the user's tf.data too) beside jax or torch, sees no
    GPU: it would take most of the GPU's memory beside the backend that trains."""
    sys.meta_path.insert(0, _AfterImport("tensorflow", lambda tf: tf.config.set_visible_devices([], "GPU")))
