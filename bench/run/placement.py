"""TensorFlow imported by a pipeline beside another backend is kept off the GPU that the backend
trains on (where each backend itself trains: bench/run/backends/)."""

from __future__ import annotations

import importlib.abc
import sys


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
