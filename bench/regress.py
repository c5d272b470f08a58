"""`gpubench compare --remeasure`: a gate that decides. Where the noise cannot decide a configuration
(bench/analyse/regressions.py), or its current figure was measured under load, the sweep's own
session measures it again in the current results folder: more repeats where the noise could not
tell (half as many again each round), its runs anew where other work took the CPU; then the two
results are judged again. It stops when every configuration is decided or has taken the preset's
[gate] `max_repeats` runs; only then is "cannot judge" said, with the repeats a decision would need.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from bench.analyse.decisions import next_repeats
from bench.analyse.points import current_rows, spec_of
from bench.analyse.regressions import CompareError, Judged, judge
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
    spent: dict[str, int] = {}  # runs of each configuration measured again under load
    measured = []
    while True:
        judged = judge(baseline, folder, preset.gate, **judging)
        wanted = {pid: why for c in judged.counted for pid, why in c.to_measure.items()}
        more, again = more_runs(folder, wanted, spent, budget)
        if not more and not again:
            return judged, measured
        measured.append(
            ", ".join(
                [f"{spec.point_id} to {n} repeats (within the noise)" for spec, n in more]
                + [f"{spec.point_id}'s {n} runs anew (under load)" for spec, n in again]
            )
        )
        print(f"gate: measuring again: {measured[-1]}", file=sys.stderr)
        options = session.Options(
            gpu=meta["gpu"], data=meta.get("data"), out=str(folder), timeout_s=preset.timeout_s, looks=False
        )
        for specs, force in ((more, False), (again, True)):
            grid = [dataclasses.replace(spec, repeat=r) for spec, n in specs for r in range(n)]
            if grid:
                session.run(grid, meta["preset"], DataSpec(), dataclasses.replace(options, force=force))


def more_runs(folder: Path, wanted: dict[str, str], spent: dict[str, int], budget: int):
    """([(a configuration within the noise, the repeats to measure it to)], [(a configuration measured
    under load, its runs to measure anew)]), within `budget` runs a configuration; `spent` counts the
    runs measured anew so far and is updated."""
    rows = current_rows(folder)[0]
    more, again = [], []
    for pid, why in sorted(wanted.items()):
        mine = [r for r in rows if r["point_id"] == pid]
        spec = spec_of(mine[0])
        if why == "noise" and sum(r["status"] == "ok" for r in mine) < budget:
            more.append((spec, int(next_repeats(len(mine), budget))))
        elif why == "load" and 2 * len(mine) + spent.get(pid, 0) <= budget:
            spent[pid] = spent.get(pid, 0) + len(mine)
            again.append((spec, len(mine)))
    return more, again
