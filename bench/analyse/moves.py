"""The tuner's walk, pure: from a measured setting and what limits it, the changes worth measuring
next, and when to stop. No run is started here: `bench/tune.py` measures, this module decides,
and tests/test_tune.py drives it with a stand-in whose rates are a known function of the knobs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from bench.analyse.noise import CONFIDENCE, Noise
from pipelines.registry import PIPELINES, knob_meaning

NEAR_MODEL = 0.9  # end to end within 10% of the model alone: the input side has nothing left to give
MAX_WORKERS = 64
# More repeats of a change whose median is higher but inside the noise, each side, at most (pyperf's
# way: until the spread settles it or the cap). One look missed a 10-18% larger batch on the `mine`
# job, where the folder's noise had 5 degrees of freedom. Whole walks simulated (tests/walk_sim.py,
# 8% noise, 1,000 walks, each change judged as one of the walk's family): with 4 looks a plateau
# ends away from the start in 4.2% of walks and a change worth 30% is kept in 96.1%; 6 looks,
# 6.5% and 99.3% (400 walks).
LOOKS = 4
# The share of walks on a plateau that may end at a change that is not there (`judged`).
WALK_RATE = 0.04


class Step(NamedTuple):
    """One measured setting: its knobs, its end-to-end rates (one a repeat), its ceilings' medians
    (None where not measured), what limits it, why it was tried, and its bound in the words the report
    gives it (points.csv's bound_says: one judgement, bench/analyse/bounds.py)."""

    knobs: dict
    rates: list[float]
    pipeline: float | None
    model: float | None
    bound: str | None
    why: str = "your setting"
    says: str = ""


def median(rates: list[float]) -> float:
    ordered = sorted(rates)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _input_moves(knobs: dict, installed: set[str]) -> list[tuple[str, dict]]:
    """Loader changes, those the pipeline takes: more workers first (the seed's lever), then
    processes instead of threads, a deeper queue, a cache of decoded images, uint8 transfer, and
    tf.data in place of Keras's generator path or torch's."""
    takes = set(knob_meaning(knobs.get("pipeline") or ""))
    workers, queue = knobs.get("workers") or 0, knobs.get("max_queue_size") or 0
    found = []
    if "workers" in takes and workers < MAX_WORKERS:
        found.append(("more loader workers: more batches loaded at once", {"workers": max(1, 2 * workers)}))
    if "use_multiprocessing" in takes and workers and not knobs.get("use_multiprocessing"):
        found.append(
            (
                "worker processes instead of threads: decoding in threads shares one interpreter",
                {"use_multiprocessing": True},
            )
        )
    if "max_queue_size" in takes and workers and queue < 2 * workers:
        found.append(("a deeper queue: workers wait for room to put their batches", {"max_queue_size": 2 * workers}))
    if "cache" in takes and not knobs.get("cache"):
        found.append(("a cache of decoded images: each image decoded once", {"cache": True}))
    if "transfer" in takes and knobs.get("transfer", "float32") != "uint8":
        found.append(("uint8 transfer: a quarter of the bytes handed to the model", {"transfer": "uint8"}))
    if getattr(PIPELINES.get(knobs.get("pipeline")), "decodes_in_python", False):
        found += [
            (f"{p.kind} in place of this loader: {p.instead}", {"pipeline": p.name, "use_multiprocessing": None})
            for p in PIPELINES.values()
            if p.instead and p.name in installed
        ]
    return found


def _compute_moves(knobs: dict, gpu: bool, saved_model: bool) -> list[tuple[str, dict]]:
    """Model-side changes: a larger batch (not for a pipeline that makes its own batches: its batch is
    blank), mixed precision (not for a saved model, which keeps its dtype policy), XLA."""
    batch = knobs.get("batch")
    found = [("a larger batch: more work a step for the same per-step cost", {"batch": 2 * batch})] if batch else []
    if not saved_model and knobs.get("precision", "float32") == "float32":
        precision = "mixed_float16" if gpu else "mixed_bfloat16"
        found.append((f"{precision}: the model's arithmetic in 16 bits", {"precision": precision}))
    if knobs.get("xla", "auto") != "on":
        found.append(("XLA on: the step compiled as one program", {"xla": "on"}))
    return found


def moves(step: Step, installed: set[str], gpu: bool = False) -> list[tuple[str, dict]]:
    """(why, knobs changed) worth trying from `step`, best first, for what limits it. Overhead (end
    to end well below both ceilings) is per-step cost: fewer, larger steps or a compiled step; an
    unknown bound tries both sides."""
    saved_model = str(step.knobs.get("backbone", "")).endswith(".keras")
    feed = _input_moves(step.knobs, installed)
    model = _compute_moves(step.knobs, gpu, saved_model)
    if step.bound == "input":  # last, a larger batch: a loader's per-batch cost is spread over more images
        return feed + [m for m in model if "batch" in m[1]]
    if step.bound == "compute":
        return model
    if step.bound == "overhead":
        return [m for m in model if "batch" in m[1] or "xla" in m[1]] + feed
    return feed + model


def judged(noise: Noise, max_runs: int) -> Noise:
    """The noise a change is judged with: a walk compares up to `max_runs` - 1 changes with the
    setting it keeps: each is judged so that the walk as a whole claims a change that is not
    there in WALK_RATE of walks or fewer, Bonferroni's way (bench/analyse/noise.py)."""
    return noise._replace(family=math.ceil(max(max_runs - 1, 1) * (1 - CONFIDENCE) / WALK_RATE))


def done(step: Step) -> str | None:
    """Why the walk stops at `step` whatever else is tried, or None: end to end within 10% of the
    model alone leaves only model-side changes, which a compute-bound step tries before it stops."""
    if step.model and median(step.rates) >= NEAR_MODEL * step.model and step.bound != "compute":
        return f"end to end is within {1 - NEAR_MODEL:.0%} of the model alone ({step.model:.0f} images/s)"
    return None


def walk(
    first: Step,
    measure: Callable[[dict, str], Step],
    better: Callable[[list[float], list[float]], bool],
    installed: set[str],
    max_runs: int = 12,
    gpu: bool = False,
    say: Callable[[str], None] = print,
    more: Callable[[Step], Step] | None = None,
    bounded: Callable[[Step], Step] | None = None,
) -> tuple[list[Step], Step, str]:
    """From the measured `first` step, tries the moves its bound points to, keeping a change only
    where `better` (the noise rule) says its rates beat the kept setting's; a change whose median is
    higher but inside the noise gets more repeats on each side (`more`), up to LOOKS, as a sweep's
    unsettled verdicts do. Only end to end decides a change, so a change may be measured
    without its ceilings: `bounded` adds them to a kept one, whose bound plans the next moves.
    Stops near the model's ceiling, when no move helps, or after `max_runs` settings. Returns
    (every step, the best, why it stopped)."""
    if not first.rates:
        return [first], first, "your setting did not run"
    best, path, seen = first, [first], {_key(first.knobs)}
    while True:
        reason = done(best)
        if reason:
            return path, best, reason
        kept = False
        for why, change in moves(best, installed, gpu):
            knobs = {**best.knobs, **change}
            if _key(knobs) in seen:
                continue
            if len(path) >= max_runs:
                return path, best, f"{max_runs} settings measured (--max-runs)"
            seen.add(_key(knobs))
            step = measure(knobs, why)
            for _ in range(LOOKS if more and step.rates else 0):  # higher, but inside the noise: look again
                if better(step.rates, best.rates) or median(step.rates) <= median(best.rates):
                    break
                kept_at = next(i for i, s in enumerate(path) if s is best)
                step, path[kept_at] = more(step), more(best)
                best = path[kept_at]
            path.append(step)
            if better(step.rates, best.rates):
                say(
                    f"  kept: {median(step.rates):.0f} vs {median(best.rates):.0f} images/s, beyond the repeats' spread"
                )
                best, kept = (bounded(step) if bounded else step), True
                path[-1] = best
                break
            say(
                f"  not kept: {median(step.rates):.0f} vs {median(best.rates):.0f} images/s "
                "is within the noise or slower"
            )
        if not kept:
            return path, best, "no change the bound points to helps beyond the noise"


def _key(knobs: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in knobs.items()))
