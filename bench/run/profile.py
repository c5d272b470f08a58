"""--profile: a trace of a few steps inside a run's measured window, taken by the backend's own
profiler, and the operations that took most of the device's time in it.

JAX and TensorFlow write TensorBoard's profile format (plugins/profile/<time>/<host>.xplane.pb,
which TensorBoard's profile plugin and `jax.profiler.ProfileData` open); torch writes its
profiler's chrome trace (trace.json, for chrome://tracing or Perfetto). Beside the trace,
top_ops.json holds the operations by self time, which the report lists. Each backend's module
(bench/run/backends/) starts and stops its profiler and reads its trace. Profiling slows what
it measures: a profiled run's rates are left out of the tables and verdicts.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import keras

from bench.run import backends

PROFILE_STEPS = 5  # steps traced: a few, so that the trace stays small
TOP_OPS = 8  # operations kept in top_ops.json
IDLE = ("wait", "await")  # a thread waiting: not an operation's work
PYTHON = "$"  # the Python tracer's events ("$pool.py:97 worker"): the interpreter's calls, not operations


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


def xplane_file(out: Path) -> Path:
    """The XSpace file the profiler wrote under `out` (the newest, if several)."""
    found = sorted(out.glob("plugins/profile/*/*.xplane.pb"))
    if not found:
        raise FileNotFoundError(f"the profiler wrote no .xplane.pb under {out}")
    return found[-1]


def top_ops(events, n: int = TOP_OPS) -> tuple[list[dict], str]:
    """The operations by self time (their own, less the events nested in them on the same line):
    on the devices' planes ("/device:GPU:0", ...) where there are any, else on the host's (a CPU
    run: the host is the device), less the time threads spent waiting and Python's own calls."""
    lines = defaultdict(list)
    for plane, line, name, start, duration in events:
        if not name.startswith(PYTHON):
            lines[(plane, line)].append((float(start), float(duration), name))
    device = any(plane.startswith("/device:") for plane, _ in lines)
    chosen = {
        key: value
        for key, value in lines.items()
        if (key[0].startswith("/device:") if device else key[0].startswith("/host:"))
    }
    own = defaultdict(float)
    for spans in chosen.values():
        for name, ns in self_times(spans):
            own[name] += ns
    return ranked(own, n), "device" if device else "host"


def self_times(spans: list[tuple[float, float, str]]):
    """(name, self time) of each span of one line: its duration less its direct children's."""
    spans = sorted(spans, key=lambda s: (s[0], -s[1]))
    stack: list[list] = []  # [end, name, self time]
    for start, duration, name in spans:
        while stack and stack[-1][0] <= start:
            _, done, own = stack.pop()
            yield done, own
        if stack:
            stack[-1][2] -= duration
        stack.append([start + duration, name, duration])
    for _, name, own in reversed(stack):
        yield name, own


def ranked(own: dict[str, float], n: int) -> list[dict]:
    """The `n` largest, in ms with their share of the time (idle waits left out of both)."""
    work = {k: v for k, v in own.items() if v > 0 and not any(w in k.lower() for w in IDLE)}
    total = sum(work.values())
    top = sorted(work.items(), key=lambda kv: -kv[1])[:n]
    return [{"name": k, "ms": v / 1e6, "share": v / total} for k, v in top]
