"""What the launcher's server imports once, before it forks each run (bench/run/launcher.py): the
worker, TensorFlow and Keras on TensorFlow, the other frameworks hidden as a TensorFlow run hides
them. Nothing here starts a thread pool or touches a device."""

from bench.run import devices, worker  # noqa: F401

devices.prepare("tensorflow", 1, ("tensorflow",))
import keras  # noqa: E402, F401
import tensorflow  # noqa: E402, F401
