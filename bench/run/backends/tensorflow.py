"""The TensorFlow backend: tf.distribute.MirroredStrategy over the devices, XLA's persistent cache,
TensorFlow's profiler (TensorBoard's xplane). TensorFlow is imported inside the functions only."""

from __future__ import annotations

import os
import platform

from bench.run.backends import GPU_MEMORY_ENV

# Keras's trainer on TensorFlow (bench/run/timing.py): the traced step takes its batch, so the first
# step traces before it fetches; the batch is fetched inside the step, after its begin hook.
FETCH_IN_TRACE = True
FETCHES_BEFORE_STEP_HOOK = False
COMPILES_EAGER_OPS = False  # its eager ops run uncompiled: only jit_compile fills the cache


def prepare(gpus: int, hosts: int) -> None:
    """Nothing beyond what every backend is given: TensorFlow reads its devices when it starts."""


def use_compile_cache(folder: str) -> None:
    """XLA's persistent cache (what XLA compiles: jit on)."""
    import os

    flags = os.environ.get("TF_XLA_FLAGS", "")
    if "persistent_cache_directory" not in flags:
        os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={folder}".strip()


def setup(gpus: int, hosts: int):
    """tf.distribute.MirroredStrategy over the devices; GPUs get memory growth, or the cap given.
    (scope, device kind)."""
    import tensorflow as tf

    physical = tf.config.list_physical_devices("GPU")
    cap = os.environ.get(GPU_MEMORY_ENV)  # a logical device of that many MB, else memory growth
    for gpu in physical:
        if cap:
            tf.config.set_logical_device_configuration(
                gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=int(cap))]
            )
        else:
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
    return strategy.scope(), kind


def spreads_over_hosts() -> bool:
    """Keras 3's fit fails under MultiWorkerMirroredStrategy (the descriptor's multi_host says why)."""
    return False


def no_device_started() -> bool | None:
    """None: TensorFlow cannot be asked whether it started its runtime or CUDA (a fork is left to
    the CPU only)."""
    return None


def tf32_allowed() -> bool:
    import tensorflow as tf

    return tf.config.experimental.tensor_float_32_execution_enabled()


def allocator_peak_mb() -> float | None:
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    return None


def where(count: int) -> dict:
    """Its version, platform, devices, CUDA and cuDNN (those it was built for, loaded with a GPU) and
    float32 matmul arithmetic."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    build = tf.sysconfig.get_build_info()
    facts = {
        "version": tf.__version__,
        "matmul": "tf32 allowed" if tf.config.experimental.tensor_float_32_execution_enabled() else "float32",
    }
    if gpus:
        return {
            **facts,
            "platform": "gpu",
            "cuda": str(build.get("cuda_version") or ""),
            "cudnn": str(build.get("cudnn_version") or ""),
            "devices": [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus[:count]],
        }
    return {**facts, "devices": [d.name for d in tf.config.list_logical_devices("CPU")[:count]]}


def device_asked() -> str | None:
    """No variable pins TensorFlow to a device: CUDA_VISIBLE_DEVICES and `gpus` decide."""
    return None


def kept_off_gpu() -> str | None:
    return None


def no_gpu_build(venv: int) -> str | None:
    """Why no TensorFlow build reaches the GPU here (aarch64, CUDA 13), or None."""
    if platform.machine() == "aarch64":
        return "TensorFlow's aarch64 wheels are CPU builds (none for CUDA): measure with --set backend=jax or torch"
    if venv >= 13:
        return (
            "TensorFlow has no CUDA 13 build: `make CUDA=12` remakes the venv with CUDA 12 builds, or --set backend=jax"
        )
    return None


def gpu_install(venv: int) -> str:
    return "pip install 'tensorflow[and-cuda]'"


def start_profiler(out):
    """Starts TensorFlow's profiler; the session stop_profiler takes (here only the folder)."""
    import tensorflow as tf

    tf.profiler.experimental.start(str(out))
    return out


def stop_profiler(session, out):
    """Ends the trace; (the top operations, "device" or "host", the xplane file), read with TensorFlow's protobuf."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from bench.run.trace_ops import top_ops, xplane_file

    tf.profiler.experimental.stop()
    trace = xplane_file(out)
    space = xplane_pb2.XSpace.FromString(trace.read_bytes())
    return (*top_ops(_events(space)), trace)


def _events(space):
    """(plane, line, name, start_ns, duration_ns) of an XSpace protobuf's events."""
    for plane in space.planes:
        names = {k: m.name for k, m in plane.event_metadata.items()}
        for line in plane.lines:
            start = line.timestamp_ns
            for e in line.events:
                yield (
                    plane.name,
                    line.name,
                    names.get(e.metadata_id, "?"),
                    start + e.offset_ps / 1000,
                    e.duration_ps / 1000,
                )


def match_convolutions(math: str) -> None:
    """The peak probe's matrix products already take the convolutions' arithmetic (TF32 setting shared)."""
