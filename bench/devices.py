"""The devices a run trains on, and the tf.distribute strategy over them.

With no GPU, `gpus=N` splits the CPU into N logical devices, so multi-device code runs (and is
tested) on any machine; this must happen before TensorFlow starts its runtime, which is why
every run has a fresh process.
"""

from __future__ import annotations


def setup(gpus: int):
    """(strategy, description) for training on `gpus` devices. GPUs get memory growth, so
    that memory figures show what a run needed rather than everything TensorFlow reserves."""
    import tensorflow as tf

    physical = tf.config.list_physical_devices("GPU")
    for gpu in physical:
        tf.config.experimental.set_memory_growth(gpu, True)
    if physical:
        if gpus > len(physical):
            raise RuntimeError(f"gpus={gpus} asked, {len(physical)} GPU(s) visible to TensorFlow")
        names = [f"/gpu:{i}" for i in range(gpus)]
        kind = "GPU"
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        if gpus > 1:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * gpus)
        names = [f"/cpu:{i}" for i in range(gpus)]
        kind = "CPU (logical)" if gpus > 1 else "CPU"
    if gpus == 1:
        return tf.distribute.get_strategy(), f"1 x {kind}"
    return tf.distribute.MirroredStrategy(devices=names), f"{gpus} x {kind}"


def allocator_peak_mb() -> float | None:
    """Peak memory TensorFlow's allocator held on the first GPU, or None without a GPU."""
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
