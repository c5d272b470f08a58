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
from pathlib import Path

from bench.plan.backends import BACKENDS
from bench.plan.knobs import PRECISIONS
from bench.run import placement

FRAMEWORKS = tuple(b.package for b in BACKENDS.values())  # the packages one run hides but its own
CACHE_ENV = "GPUBENCH_CACHE_DIR"


class _Without(importlib.abc.MetaPathFinder):
    """An import finder that finds neither `packages` nor their metadata, and everything else
    as `finder` does."""

    def __init__(self, finder, packages: set[str]):
        self.finder, self.packages = finder, packages

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.packages or not hasattr(self.finder, "find_spec"):
            return None
        return self.finder.find_spec(name, path, target)

    def find_distributions(self, context=importlib.metadata.DistributionFinder.Context()):  # noqa: B008 (importlib's own signature)
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


def prepare(backend: str, gpus: int, uses: tuple[str, ...] = (), hosts: int = 1) -> None:
    """Environment the backend reads when it starts: which backend, quiet start-up, logical
    CPU devices for jax, and no preallocation of a GPU's memory (so that memory figures show
    what a run needed rather than what the backend reserves).

    The frameworks the run does not use (neither its backend nor in `uses`) are made
    unimportable in this process: Keras and TensorFlow import JAX whenever it is installed,
    which costs each run a second and 100 MB and would make a run's figures depend on what
    else is installed."""
    hide(set(FRAMEWORKS) - {backend, *uses} - set(sys.modules))
    os.environ["KERAS_BACKEND"] = backend
    os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA's device k is NVML's k: the sampler's and the label's
    if backend != "tensorflow" and "tensorflow" in uses:
        placement.keep_tensorflow_off_gpu()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    use_compile_cache(backend)
    if backend == "jax":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        if hosts > 1:  # collectives between processes on CPU devices (GPUs use NCCL)
            os.environ.setdefault("JAX_CPU_COLLECTIVES_IMPLEMENTATION", "gloo")
        if gpus > 1:  # only the host platform's count: on a GPU machine jax trains on the GPUs
            flags = os.environ.get("XLA_FLAGS", "")
            os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={gpus}".strip()


def compile_cache_dir(backend: str) -> Path:
    """Where `backend` keeps compiled programs for later runs: $GPUBENCH_CACHE_DIR/<backend>, by
    default under ~/.cache/gpubench, shared by every run and sweep on this machine."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gpubench"
    return Path(root) / backend


def use_compile_cache(backend: str) -> None:
    """Point the backend's persistent compilation cache at compile_cache_dir, so that repeats,
    ceilings and loader variants of one model, batch and precision compile once. Each backend's
    cache key holds the program, shapes, flags, versions and device. JAX caches every jitted
    program (by default only those that took over a second to compile); TensorFlow caches what
    XLA compiles (jit on); torch what torch.compile compiles (xla=on)."""
    folder = str(compile_cache_dir(backend))
    if backend == "jax":
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", folder)
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    elif backend == "tensorflow":
        flags = os.environ.get("TF_XLA_FLAGS", "")
        if "persistent_cache_directory" not in flags:
            os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={folder}".strip()
    else:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", folder)
        os.environ.setdefault("TRITON_CACHE_DIR", str(Path(folder) / "triton"))


def cache_entries(backend: str) -> int:
    """Files in the backend's compilation cache: a run that adds none compiled nothing anew."""
    return sum(len(files) for _, _, files in os.walk(compile_cache_dir(backend)))


def matmul_precision(backend: str, precision: str, compute_capability: float | None) -> str:
    """The arithmetic the model's convolutions and matrix products run in, which MFU must be
    compared with: bfloat16 or float16 under a mixed policy; for float32 on a GPU with TF32
    tensor cores (compute capability 8.0 and later) TF32, where the backend allows it, as each
    does by default for convolutions (TensorFlow's tensor_float_32_execution, JAX's default
    precision, torch's cudnn.allow_tf32); otherwise float32. Asks the live framework, so call
    it in a process that runs it."""
    if precision != "float32":
        return PRECISIONS[precision]
    if not compute_capability or compute_capability < 8.0:
        return "float32"
    if backend == "tensorflow":
        import tensorflow as tf

        allowed = tf.config.experimental.tensor_float_32_execution_enabled()
    elif backend == "jax":
        import jax

        allowed = str(jax.config.jax_default_matmul_precision or "default").lower() not in ("highest", "float32")
    else:
        import torch

        allowed = torch.backends.cudnn.allow_tf32
    return "tf32" if allowed else "float32"


def setup(backend: str, gpus: int, hosts: int = 1):
    """(a context to build and compile the model in, a description of the devices)."""
    if hosts > 1:
        return _jax_hosts(gpus, hosts)
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


def _jax_hosts(gpus: int, hosts: int):
    """Keras 3's multi-process API: `keras.distribution.initialize()` starts jax.distributed from
    the KERAS_DISTRIBUTION_* variables (or finds a Slurm or MPI cluster by itself); DataParallel
    over every process's devices, each process feeding its own share of every batch."""
    import jax
    import keras

    keras.distribution.initialize()
    if jax.process_count() != hosts:
        raise RuntimeError(f"hosts={hosts} asked, {jax.process_count()} processes joined")
    local = jax.local_devices()
    kind = "GPU" if local[0].platform == "gpu" else local[0].platform.upper()
    if gpus > len(local):
        raise RuntimeError(f"gpus={gpus} asked per host, {len(local)} device(s) visible to JAX")
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=jax.devices(), auto_shard_dataset=False))
    return contextlib.nullcontext(), f"{hosts} hosts x {_described(gpus, kind)}"


def multi_host_refusal(backend: str) -> str | None:
    """Why Keras cannot train on `backend` over several processes (its descriptor's reason), or
    None where it can; torch's reason holds until Keras ships a distribution library for it (read
    from the files, importing nothing; not in Keras 3.15)."""
    import importlib.util

    why = BACKENDS[backend].multi_host
    keras_spec = importlib.util.find_spec("keras")
    if not why or backend == "torch" and keras_spec and keras_spec.origin and (
            Path(keras_spec.origin).parent / "src" / "backend" / "torch" / "distribution_lib.py").is_file():
        return None
    return why.format(version=importlib.metadata.version("keras") if keras_spec else "?")


def _torch(gpus: int):
    if gpus > 1:
        raise RuntimeError(BACKENDS["torch"].one_device)
    return contextlib.nullcontext(), _described(1, placement.torch_device()[0].upper())


def allocator_peak_mb(backend: str) -> float | None:
    """Peak memory the backend's allocator held on the first GPU, or None without a GPU."""
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_logical_devices("GPU"):
            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    elif backend == "jax":
        import jax

        stats = jax.local_devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return stats["peak_bytes_in_use"] / 2**20
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated(0) / 2**20
    return None
