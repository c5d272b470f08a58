"""--profile: a trace of a few steps inside a run's measured window, taken by the backend's own
profiler, and the operations that took most of the device's time in it.

JAX and TensorFlow write TensorBoard's profile format (plugins/profile/<time>/<host>.xplane.pb,
which TensorBoard's profile plugin and `jax.profiler.ProfileData` open); torch writes its
profiler's chrome trace (trace.json, for chrome://tracing or Perfetto). Beside the trace,
top_ops.json holds the operations by self time, which the report lists. Profiling slows what
it measures: a profiled run's rates are left out of the tables and verdicts.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import keras

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
            self.session = _start(self.backend, self.out)
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
        ops, source, trace = _stop(self.backend, session, self.out)
        (self.out / "top_ops.json").write_text(json.dumps(
            {"backend": self.backend, "trace": str(trace.relative_to(self.out)), "source": source,
             "ops": ops}, indent=2))


def _start(backend: str, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    if backend == "jax":
        import jax

        options = jax.profiler.ProfileOptions()
        options.python_tracer_level = 0  # Python's own calls: the profiler's and the loader's, not the step's
        jax.profiler.start_trace(str(out), profiler_options=options)
        return "jax"
    if backend == "tensorflow":
        import tensorflow as tf

        tf.profiler.experimental.start(str(out))
        return "tensorflow"
    import torch

    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    session = torch.profiler.profile(activities=activities)
    session.__enter__()
    return session


def _stop(backend: str, session, out: Path) -> tuple[list[dict], str, Path]:
    """Ends the trace; (the top operations, "device" or "host", the trace file)."""
    if backend == "jax":
        import jax

        jax.profiler.stop_trace()
        trace = xplane_file(out)
        planes = jax.profiler.ProfileData.from_file(str(trace)).planes
        return (*top_ops(_events(planes)), trace)
    if backend == "tensorflow":
        import tensorflow as tf
        from tensorflow.tsl.profiler.protobuf import xplane_pb2

        tf.profiler.experimental.stop()
        trace = xplane_file(out)
        space = xplane_pb2.XSpace.FromString(trace.read_bytes())
        return (*top_ops(_proto_events(space)), trace)
    session.__exit__(None, None, None)
    trace = out / "trace.json"
    session.export_chrome_trace(str(trace))
    return (*torch_top_ops(session.key_averages()), trace)


def xplane_file(out: Path) -> Path:
    """The XSpace file the profiler wrote under `out` (the newest, if several)."""
    found = sorted(out.glob("plugins/profile/*/*.xplane.pb"))
    if not found:
        raise FileNotFoundError(f"the profiler wrote no .xplane.pb under {out}")
    return found[-1]


def _events(planes):
    """(plane, line, name, start_ns, duration_ns) of a jax.profiler.ProfileData's events."""
    for plane in planes:
        for line in plane.lines:
            for e in line.events:
                yield plane.name, line.name, e.name, e.start_ns, e.duration_ns


def _proto_events(space):
    """The same from an XSpace protobuf (TensorFlow's reader)."""
    for plane in space.planes:
        names = {k: m.name for k, m in plane.event_metadata.items()}
        for line in plane.lines:
            start = line.timestamp_ns
            for e in line.events:
                yield (plane.name, line.name, names.get(e.metadata_id, "?"), start + e.offset_ps / 1000,
                       e.duration_ps / 1000)


def top_ops(events, n: int = TOP_OPS) -> tuple[list[dict], str]:
    """The operations by self time (their own, less the events nested in them on the same line):
    on the devices' planes ("/device:GPU:0", ...) where there are any, else on the host's (a CPU
    run: the host is the device), less the time threads spent waiting and Python's own calls."""
    lines = defaultdict(list)
    for plane, line, name, start, duration in events:
        if not name.startswith(PYTHON):
            lines[(plane, line)].append((float(start), float(duration), name))
    device = any(plane.startswith("/device:") for plane, _ in lines)
    chosen = {key: value for key, value in lines.items()
              if (key[0].startswith("/device:") if device else key[0].startswith("/host:"))}
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


def torch_top_ops(averages, n: int = TOP_OPS) -> tuple[list[dict], str]:
    """torch's key_averages by self device time (CUDA kernels), else by self CPU time."""
    device = any(getattr(a, "self_device_time_total", 0) > 0 for a in averages)
    key = "self_device_time_total" if device else "self_cpu_time_total"
    own = {a.key: getattr(a, key) * 1000.0 for a in averages}  # microseconds -> nanoseconds
    return ranked(own, n), "device" if device else "host"

