"""The Keras backends, one descriptor each: the package it imports and how to install it, its name
in reports, how it trains over several devices or why it cannot. The checks, the worker's
environment, the skips, env.json and the report read them from here; what it does lives in its
module, bench/run/backends/<name>.py. Nothing here imports a framework."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    """What gpubench knows of one Keras backend, stated once."""

    name: str  # KERAS_BACKEND's value, the `backend` knob's
    title: str  # as its makers write it (the report's machine lines)
    package: str  # the module it imports
    install: str  # how to install it
    devices: str = ""  # what spreads training over several devices; '' where nothing does
    one_device: str = ""  # why it trains on one device only; '' where it spreads
    multi_host: str = ""  # why it cannot train over several processes; '' where it can ({version}: Keras's)
    channels_first_on_cpu: str = ""  # why channels_first cannot run on a CPU; '' where it can
    also_versioned: tuple[str, ...] = ()  # packages beside `package` whose versions say what measures (env.json)


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "tensorflow",
            "TensorFlow",
            "tensorflow",
            "pip install 'gpubench[tf]'",
            devices="tf.distribute.MirroredStrategy",
            multi_host="Keras 3's fit fails under TensorFlow's MultiWorkerMirroredStrategy (keras-team/keras#20585, "
            "open): hosts > 1 runs on jax",
            channels_first_on_cpu="TensorFlow's CPU convolutions take channels_last (NHWC) only; channels_first "
            "needs a GPU",
        ),
        Backend(
            "jax",
            "JAX",
            "jax",
            "pip install 'gpubench[jax]'",
            devices="keras.distribution.DataParallel",
            also_versioned=("jaxlib",),
        ),
        Backend(
            "torch",
            "PyTorch",
            "torch",
            "pip install 'gpubench[torch]'",
            one_device="Keras 3 trains on one device with the torch backend (keras.distribution is jax-only, "
            "tf.distribute TensorFlow's)",
            multi_host="Keras's multi-process data parallelism is not in a release for the torch backend yet "
            "(keras.distribution is jax-only in Keras {version}): hosts > 1 runs on jax",
        ),
    )
}


def spread_over_devices() -> str:
    """How each backend that can spreads training over devices, for the scaling section."""
    return ", ".join(f"{b.devices} on {b.name}" for b in BACKENDS.values() if b.devices)
