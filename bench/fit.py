"""The largest batch (or input size) a backbone trains at without running out of memory:
doubling from a start until the first out-of-memory, then bisection between the last fit and
the first failure. Every try is a run in its own process, kept as a row like any other."""

from __future__ import annotations

import dataclasses
from typing import Callable

from bench.spec import RunSpec

TRY = dict(pipeline="synthetic", epochs=1, steps_per_epoch=2, validation_steps=1, checkpoint=False, window="epochs")


class SearchError(RuntimeError):
    """A try failed for another reason than memory: the search cannot say what fits."""


def search(base: RunSpec, knob: str, start: int, limit: int, run: Callable[[RunSpec], dict],
           step: int = 1) -> tuple[int | None, list[dict]]:
    """(largest value of `knob` that trains, or None; every try's record). The bisection
    stops within 1/16 of the answer, and on multiples of `step` (input sizes of 32)."""
    tries: list[dict] = []

    def fits(value: int) -> bool:
        record = run(dataclasses.replace(base, **TRY, **{knob: value}))
        tries.append(record)
        if record["status"] in ("ok", "oom"):
            return record["status"] == "ok"
        raise SearchError(f"{knob}={value}: {record['status']}: {record['error']}")

    good, bad, value = None, None, start
    while value <= limit:
        if not fits(value):
            bad = value
            break
        good, value = value, value * 2
    if good is None or bad is None:
        return good, tries
    while bad - good > max(step, good // 16):
        middle = (good + bad) // 2 // step * step
        if middle <= good:
            break
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good, tries


def summary(knob: str, found: int | None, tries: list[dict], limit: int) -> str:
    lines = [f"| {knob} | status | device memory peak (MB) | host memory peak (MB) |", "|---|---|---|---|"]
    for r in sorted(tries, key=lambda r: r[knob]):
        device = "" if r.get("gpu_mem_peak_mb") is None else f"{r['gpu_mem_peak_mb']:.0f}"
        host = "" if r.get("rss_peak_mb") is None else f"{r['rss_peak_mb']:.0f}"
        lines.append(f"| {r[knob]} | {r['status']} | {device} | {host} |")
    if found is None:
        answer = f"nothing fits: the first try already ran out of memory"
    elif all(r["status"] == "ok" for r in tries):
        answer = f"{found} fits, and so did every try up to the limit {limit}"
    else:
        answer = f"the largest {knob} that trains is {found}"
    return "\n".join([f"**{answer}**", ""] + lines)
