"""What the launcher's server imports once, before it forks each run (bench/run/launcher.py): the
worker, TensorFlow and Keras on TensorFlow, the other frameworks hidden as a TensorFlow run hides
them. Nothing here starts a thread pool or touches a device. The server shares the sweep's
console, so TensorFlow's start-up lines (oneDNN, "Could not find cuda drivers") are set aside
while it loads: each run's log has them from its own start."""

import os

from bench.run import devices, worker  # noqa: F401

devices.prepare("tensorflow", 1, ("tensorflow",))
_console = os.dup(2)
os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
try:
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
finally:
    os.dup2(_console, 2)
    os.close(_console)
