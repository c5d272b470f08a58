"""The operations a profiler's trace spent its time in (top_ops.json): functions of the trace's
events alone, which each backend's module (bench/run/backends/) calls on the trace it read; no
framework is imported here."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TOP_OPS = 8  # operations kept in top_ops.json
IDLE = ("wait", "await")  # a thread waiting: not an operation's work
PYTHON = "$"  # the Python tracer's events ("$pool.py:97 worker"): the interpreter's calls, not operations


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
