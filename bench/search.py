"""The largest batch (or input size) a backbone trains at without running out of memory:
doubling from a start until the first out-of-memory, then bisection between the last fit and
the first failure. Every try is a run in its own process, kept as a row like any other."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.plan.grid import one_point
from bench.plan.knobs import RunSpec, SpecError
from bench.plan.presets import DataSpec, parse_size
from pipelines.dataset import make_synthetic
from pipelines.registry import MODEL_ALONE

TRY = dict(pipeline=MODEL_ALONE, epochs=1, steps_per_epoch=2, validation_steps=1, checkpoint=False, window="epochs")
DATA = DataSpec(train=12, val=6, classes=3, image_size="64x48")  # the tries train on synthetic tensors


class SearchError(RuntimeError):
    """A try failed for another reason than memory: the search cannot say what fits."""


def search(
    base: RunSpec, knob: str, start: int, limit: int, run: Callable[[RunSpec], dict], step: int = 1
) -> tuple[int | None, list[dict]]:
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
    """`gpubench fit`'s answer and a table of every try, as markdown (also written to fit.md)."""
    lines = [f"| {knob} | status | device memory peak (MB) | host memory peak (MB) |", "|---|---|---|---|"]
    for r in sorted(tries, key=lambda r: r[knob]):
        device = "" if r.get("gpu_mem_peak_mb") is None else f"{r['gpu_mem_peak_mb']:.0f}"
        host = "" if r.get("rss_peak_mb") is None else f"{r['rss_peak_mb']:.0f}"
        lines.append(f"| {r[knob]} | {r['status']} | {device} | {host} |")
    if found is None:
        answer = "nothing fits: the first try already ran out of memory"
    elif all(r["status"] == "ok" for r in tries):
        answer = f"{found} fits, and so did every try up to the limit {limit}"
    else:
        answer = f"the largest {knob} that trains is {found}"
    return "\n".join([f"**{answer}**", ""] + lines)


def run_search(base: RunSpec, knob: str, start: int | None, limit: int, options) -> str:
    """The search of `gpubench fit` for the largest `knob` of `base` (its backbone, backend,
    precision, ...), each try a run of the sweep's engine (bench/run/runner.py: a row in
    results/<gpu>/<host>/fit-<backbone>/, under `options.mem_limit_mb` where it is set) and fit.md
    summing them up; returns that summary. Without --data the tries' tensors need only a tree's
    classes: it is made in a temporary folder, so nothing is left in the current one."""
    with tempfile.TemporaryDirectory(prefix="gpubench-fit-") as scratch:
        if options.data is None:
            root = make_synthetic(
                Path(scratch) / "data", DATA.train, DATA.val, DATA.classes, parse_size(DATA.image_size)
            )
            options = dataclasses.replace(options, data=str(root))
        return _search(base, knob, start, limit, options)


def _search(base: RunSpec, knob: str, start: int | None, limit: int, options) -> str:
    from bench import session
    from bench.run import runner

    backbone = base.backbone
    start = start or (32 if knob == "input_size" else 1)
    step = 32 if knob == "input_size" else 1
    grid = [one_point(dataclasses.replace(base, **{knob: start}).knobs())]
    with session.prepared(options, f"fit-{backbone}", DATA, grid) as prepared:
        store, meta = prepared.store, prepared.meta

        def run(spec: RunSpec) -> dict:
            return runner.sweep([spec], prepared, options)[0]  # options.force: every try runs

        try:
            found, tries = search(base, knob, start, limit, run, step)
        except SearchError as e:
            raise SpecError(f"the search stopped: {e}") from None
        text = summary(knob, found, tries, limit)
        (store.root / "fit.md").write_text(
            f"# {backbone}: the largest {knob} that trains\n\nCommand: `{meta['command']}`\n\n{text}\n"
        )
    return text
