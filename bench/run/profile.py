"""--profile: a trace of a few steps inside a run's measured window, taken by the backend's own
profiler, and the operations that took most of the device's time in it.

JAX and TensorFlow write TensorBoard's profile format (plugins/profile/<time>/<host>.xplane.pb,
which TensorBoard's profile plugin and `jax.profiler.ProfileData` open); torch writes its
profiler's chrome trace (trace.json, for chrome://tracing or Perfetto). Beside the trace,
top_ops.json holds the operations by self time (bench/run/trace_ops.py), which the report lists.
Each backend's module (bench/run/backends/) starts and stops its profiler and reads its trace.
Profiling slows what it measures: a profiled run's rates are left out of the tables and verdicts.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras

from bench.run import backends

PROFILE_STEPS = 5  # steps traced: a few, so that the trace stays small


def profile_dir(results: Path, run_id: str) -> Path:
    """Where a run's trace goes: profiles/<run_id>/ in its results folder."""
    return Path(results) / "profiles" / run_id


class ProfileSteps(keras.callbacks.Callback):
    """Traces PROFILE_STEPS steps of the first measured epoch (the only one when there is one),
    from its second step on, so that the loader's start is not in it; then writes top_ops.json."""

    def __init__(self, backend: str, out: Path, epochs: int, steps: int = PROFILE_STEPS):
        super().__init__()
        self.backend, self.out, self.steps = backend, Path(out), steps
        self.epoch_traced = 1 if epochs > 1 else 0
        self.epoch, self.first, self.session = -1, None, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch != self.epoch_traced:
            return
        if self.session is None and self.first is None and batch >= 1:
            self.first = batch
            self.out.mkdir(parents=True, exist_ok=True)
            self.session = backends.of(self.backend).start_profiler(self.out)
        elif self.session is not None and batch >= self.first + self.steps:
            self._stop()

    def on_test_begin(self, logs=None):
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()

    def on_train_end(self, logs=None):
        self._stop()

    def _stop(self) -> None:
        if self.session is None:
            return
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:  # the traced steps' device work done (asynchronous dispatch)
            keras.ops.convert_to_numpy(optimizer.iterations.value)
        session, self.session = self.session, None
        ops, source, trace = backends.of(self.backend).stop_profiler(session, self.out)
        (self.out / "top_ops.json").write_text(
            json.dumps(
                {"backend": self.backend, "trace": str(trace.relative_to(self.out)), "source": source, "ops": ops},
                indent=2,
            )
        )
