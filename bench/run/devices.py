"""The devices a run trains on, and how the model is spread over them (each backend's own way in
bench/run/backends/).

With no GPU, `gpus=N` splits the CPU into N logical devices, so multi-device code runs (and is
tested) on any machine; this must happen before the backend starts its runtime, which is why
every run has a fresh process and `prepare` comes before Keras is imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

from bench.plan.backends import BACKENDS
from bench.plan.knobs import PRECISIONS
from bench.run import backends, placement

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
    """Environment the backend reads when it starts: which backend, quiet start-up, its compile
    cache, and what its module sets (for jax: logical CPU devices, no preallocation of a GPU's
    memory, so that memory figures show what a run needed rather than what the backend reserves).

    The frameworks the run does not use (neither its backend nor in `uses`) are made
    unimportable in this process: Keras and TensorFlow import JAX whenever it is installed,
    which costs each run a second and 100 MB and would make a run's figures depend on what
    else is installed."""
    hide(set(FRAMEWORKS) - {backend, *uses} - set(sys.modules))
    os.environ["KERAS_BACKEND"] = backend
    os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA's device k is NVML's k: the sampler's and the label's
    feeders = set(uses) - {BACKENDS[backend].package}  # frameworks that only feed the backend
    if "tensorflow" in feeders:
        placement.keep_tensorflow_off_gpu()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    use_compile_cache(backend)
    backends.of(backend).prepare(gpus, hosts)


def cache_root() -> Path:
    """$GPUBENCH_CACHE_DIR, by default ~/.cache/gpubench: what every run and sweep on this machine
    may reuse (compiled programs, measured peaks)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gpubench")


def compile_cache_dir(backend: str) -> Path:
    """Where `backend` keeps compiled programs for later runs: cache_root()/<backend>."""
    return cache_root() / backend


def use_compile_cache(backend: str) -> None:
    """Point the backend's persistent compilation cache at compile_cache_dir, so that repeats,
    ceilings and loader variants of one model, batch and precision compile once. Each backend's
    cache key holds the program, shapes, flags, versions and device; its module says what it caches."""
    backends.of(backend).use_compile_cache(str(compile_cache_dir(backend)))


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
    return "tf32" if backends.of(backend).tf32_allowed() else "float32"


def setup(backend: str, gpus: int, hosts: int = 1):
    """(a context to build and compile the model in, a description of the devices)."""
    if hosts > 1 and (why := multi_host_refusal(backend)):
        raise RuntimeError(why)
    scope, kind = backends.of(backend).setup(gpus, hosts)
    described = f"{gpus} x {kind} (logical)" if gpus > 1 and kind == "CPU" else f"{gpus} x {kind}"
    return scope, f"{hosts} hosts x {described}" if hosts > 1 else described


def multi_host_refusal(backend: str) -> str | None:
    """Why Keras cannot train on `backend` over several processes (its descriptor's reason), or
    None where it can (its module's spreads_over_hosts, read from the files, importing nothing)."""
    why = BACKENDS[backend].multi_host
    if not why or backends.of(backend).spreads_over_hosts():
        return None
    keras_spec = importlib.util.find_spec("keras")
    return why.format(version=importlib.metadata.version("keras") if keras_spec else "?")


def allocator_peak_mb(backend: str) -> float | None:
    """Peak memory the backend's allocator held on the first GPU, or None without a GPU."""
    return backends.of(backend).allocator_peak_mb()


def sampled(backend: str, gpus: int) -> list[int]:
    """The CUDA numbers of the GPUs a run trains on, for the sampler: the one a variable pins the
    backend to (KERAS_TORCH_DEVICE=cuda:k), else the first `gpus`."""
    asked = backends.of(backend).device_asked() or ""
    if asked.startswith("cuda"):
        return [int(asked.partition(":")[2] or 0)]
    return list(range(gpus))
