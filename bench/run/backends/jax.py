"""The JAX backend: keras.distribution.DataParallel over the devices (over several processes too),
JAX's persistent compilation cache, jax.profiler (TensorBoard's xplane). JAX is imported inside the
functions only."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os

from bench.run.backends import GPU_MEMORY_FRACTION_ENV

# Keras's trainer on JAX (bench/run/timing.py): it fetches a batch in Python, after the step's
# begin hook and before its compiled step, so the first wait is the loader's, not the trace's.
FETCH_IN_TRACE = False
FETCHES_BEFORE_STEP_HOOK = False
COMPILES_EAGER_OPS = True  # jax compiles even its eager ops: its cache fills without jit_compile


def prepare(gpus: int, hosts: int) -> None:
    """No preallocation of a GPU's memory, and a cap on it where one is given; gloo between processes
    on CPU devices (GPUs use NCCL); `gpus` logical devices on the host platform (on a GPU machine
    jax trains on the GPUs)."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if fraction := os.environ.get(GPU_MEMORY_FRACTION_ENV):  # the allocator's limit, preallocated or not
        os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = fraction
    if hosts > 1:
        os.environ.setdefault("JAX_CPU_COLLECTIVES_IMPLEMENTATION", "gloo")
    if gpus > 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={gpus}".strip()


def use_compile_cache(folder: str) -> None:
    """Every jitted program (by default JAX keeps only those that took over a second to compile)."""
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", folder)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def setup(gpus: int, hosts: int):
    """keras.distribution.DataParallel over the devices, each taking a share of the batch; over
    several processes, Keras 3's multi-process API. (scope, device kind)."""
    import jax
    import keras

    if hosts > 1:
        return _hosts(gpus, hosts)
    devices = jax.devices()
    if gpus > len(devices):
        raise RuntimeError(f"gpus={gpus} asked, {len(devices)} device(s) visible to JAX")
    if gpus > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices[:gpus]))
    return contextlib.nullcontext(), _kind(devices[0])


def _kind(device) -> str:
    return "GPU" if device.platform == "gpu" else device.platform.upper()


def _hosts(gpus: int, hosts: int):
    """`keras.distribution.initialize()` starts jax.distributed from the KERAS_DISTRIBUTION_*
    variables (or finds a Slurm or MPI cluster by itself); DataParallel over every process's
    devices, each process feeding its own share of every batch."""
    import jax
    import keras

    keras.distribution.initialize()
    if jax.process_count() != hosts:
        raise RuntimeError(f"hosts={hosts} asked, {jax.process_count()} processes joined")
    local = jax.local_devices()
    if gpus > len(local):
        raise RuntimeError(f"gpus={gpus} asked per host, {len(local)} device(s) visible to JAX")
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=jax.devices(), auto_shard_dataset=False)
    )
    return contextlib.nullcontext(), _kind(local[0])


def spreads_over_hosts() -> bool:
    return True


def no_device_started() -> bool:
    """No backend (CPU or GPU client) is initialised in this process: a fork cannot carry a device
    (jax has no public question for it; a jax without this one says False)."""
    try:
        from jax._src import xla_bridge

        return not xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):
        return False


def tf32_allowed() -> bool:
    import jax

    return str(jax.config.jax_default_matmul_precision or "default").lower() not in ("highest", "float32")


def allocator_peak_mb() -> float | None:
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    return stats["peak_bytes_in_use"] / 2**20 if "peak_bytes_in_use" in stats else None


def where(count: int) -> dict:
    """Its version, platform, devices, float32 matmul arithmetic, and on a GPU the CUDA and cuDNN
    its CUDA plugin loaded."""
    import jax

    found = jax.devices()[:count]
    facts = {
        "version": jax.__version__,
        "platform": found[0].platform,
        "devices": [d.device_kind for d in found],
        "matmul": str(jax.config.jax_default_matmul_precision or "default"),
    }
    return {**facts, **_cuda()} if found[0].platform == "gpu" else facts


def _cuda() -> dict:
    """The CUDA runtime and cuDNN JAX's CUDA plugin loaded, where this jaxlib tells."""
    try:
        from jax._src.lib import cuda_versions

        def dotted(v):
            return f"{v // 1000}.{v % 1000 // 10}" if v else ""

        return {
            "cuda": dotted(cuda_versions.cuda_runtime_get_version()),
            "cudnn": str(cuda_versions.cudnn_get_version() or ""),
        }
    except Exception:
        return {}


def device_asked() -> str | None:
    """ "cpu" where JAX_PLATFORMS keeps jax on the CPU, else None (jax picks its devices)."""
    return "cpu" if os.environ.get("JAX_PLATFORMS", "").split(",")[0] == "cpu" else None


def kept_off_gpu() -> str | None:
    if os.environ.get("JAX_PLATFORMS", "").startswith("cpu"):
        return f"unset JAX_PLATFORMS={os.environ['JAX_PLATFORMS']}, which keeps jax off the GPU"
    return None


def no_gpu_build(venv: int) -> str | None:
    return None


def gpu_install(venv: int) -> str:
    """The CUDA plugin of the venv's CUDA, or where it is installed, where to look for why it did not load."""
    try:
        plugin = importlib.metadata.version(f"jax-cuda{venv}-plugin")
    except importlib.metadata.PackageNotFoundError:
        return f"pip install 'jax[cuda{venv}]'"
    return (
        f"jax-cuda{venv}-plugin {plugin} is installed yet its CUDA libraries did not load: "
        "`gpubench doctor` shows the CUDA and cuDNN each backend loads; `make` installs one CUDA stack"
    )


def start_profiler(out):
    """Starts jax.profiler without Python's own calls (the profiler's and the loader's, not the
    step's); the session stop_profiler takes (here only the folder)."""
    import jax

    options = jax.profiler.ProfileOptions()
    options.python_tracer_level = 0
    jax.profiler.start_trace(str(out), profiler_options=options)
    return out


def stop_profiler(session, out):
    """Ends the trace; (the top operations, "device" or "host", the xplane file), read with jax.profiler."""
    import jax

    from bench.run.trace_ops import top_ops, xplane_file

    jax.profiler.stop_trace()
    trace = xplane_file(out)
    planes = jax.profiler.ProfileData.from_file(str(trace)).planes
    return (*top_ops(_events(planes)), trace)


def _events(planes):
    """(plane, line, name, start_ns, duration_ns) of a jax.profiler.ProfileData's events."""
    for plane in planes:
        for line in plane.lines:
            for e in line.events:
                yield plane.name, line.name, e.name, e.start_ns, e.duration_ns


def match_convolutions(math: str) -> None:
    """The peak probe's matrix products already take the convolutions' arithmetic (jax's default precision)."""
