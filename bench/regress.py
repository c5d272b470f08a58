"""`gpubench compare --remeasure`: a gate that decides. Where the noise cannot decide a configuration
(bench/analyse/regressions.py), or its current figure was measured under load, the sweep's own
session measures more repeats of it in the current results folder: half as many again where the
noise could not tell, as many again where other work took the CPU (quieter runs replace loaded
ones, bench/analyse/points.py); then the two results are judged again. It stops when every
configuration is decided or has taken the preset's [gate] `max_repeats` runs; only then is "cannot
judge" said, with the repeats a decision would need.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from bench.analyse.decisions import next_repeats
from bench.analyse.points import current_rows, spec_of
from bench.analyse.regressions import CompareError, Judged, judge
from bench.plan.knobs import RunSpec
from bench.plan.presets import DataSpec, Preset
from bench.results.store import read_json


def decided(baseline, current, preset: Preset, **judging) -> tuple[Judged, list[str]]:
    """(the last judgement, what was measured again, round by round); `judging`: judge()'s options."""
    from bench import session

    folder = Path(current)
    meta = read_json(folder / "sweep.json")
    if not folder.is_dir() or not meta:
        raise CompareError(f"--remeasure: {current} is not a results folder a sweep wrote (no sweep.json)")
    budget = preset.gate.get("max_repeats")
    if not budget:
        raise CompareError(
            f"--remeasure: the {preset.name} preset's [gate] states no max_repeats (the runs it may take)"
        )
    measured, asked = [], None
    while True:
        judged = judge(baseline, folder, preset.gate, **judging)
        wanted = {pid: why for c in judged.counted for pid, why in c.to_measure.items()}
        more = more_runs(folder, wanted, budget)
        if not more or more == asked:  # decided, out of budget, or runs that keep failing
            return judged, measured
        asked = more
        measured.append(", ".join(f"{spec.point_id} to {n} repeats ({wanted[spec.point_id]})" for spec, n in more))
        print(f"gate: measuring again: {measured[-1]}", file=sys.stderr)
        options = session.Options(
            gpu=meta["gpu"], data=meta.get("data"), out=str(folder), timeout_s=preset.timeout_s, looks=False
        )
        grid = [dataclasses.replace(spec, repeat=r) for spec, n in more for r in range(n)]
        session.run(grid, meta["preset"], DataSpec(), options)


def more_runs(folder: Path, wanted: dict[str, str], budget: int) -> list[tuple[RunSpec, int]]:
    """[(a configuration, the repeats to measure it to)]: within the noise half as many again, under
    load as many again, at most `budget`."""
    rows = current_rows(folder)[0]
    more = []
    for pid, why in sorted(wanted.items()):
        mine = [r for r in rows if r["point_id"] == pid]
        if len(mine) < budget:
            target = next_repeats(len(mine), budget) if why == "within the noise" else min(budget, 2 * len(mine))
            more.append((spec_of(mine[0]), int(target)))
    return more
