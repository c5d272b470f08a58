"""What each pass of a sweep measures (pyperf's way: measure more only where it can change a
verdict): the interleaved order one pass at a time, ceilings again only while their margin is
unclear, one more look where the noise could not settle a verdict, and the traced run."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pandas as pd

from bench.plan.knobs import RunSpec
from bench.run.failures import in_order


def passes(probes: list[RunSpec], grid: list[RunSpec], root: Path, as_needed: bool = False):
    """The interleaved order (bench/run/failures.py `in_order`) one pass at a time. From the second
    pass on, a ceiling runs again only while its margin over the other ceiling is within the noise
    (bench/analyse/repeats.py `clear_ceilings`: measured again it could not change a bound); `as_needed`,
    a point (and the ceilings its verdict is judged against) only where another repeat could settle
    its verdict or the ranking of the fastest (`unsettled`)."""
    from bench.analyse.points import write_csv

    order = in_order(probes, grid)
    for r in sorted({s.repeat for s in order}):
        planned = [s for s in order if s.repeat == r]
        this = pass_runs(planned, write_csv(root)[0] if r else None, as_needed)
        if len(this) < len(planned):
            print(
                f"pass {r + 1}: {len(planned) - len(this)} runs left out: "
                + ("their verdicts are settled and " if as_needed else "")
                + "ceilings whose margin over the other is beyond the noise",
                file=sys.stderr,
            )
        if this:
            yield this


def pass_runs(planned: list[RunSpec], points: pd.DataFrame | None, as_needed: bool) -> list[RunSpec]:
    """The runs of a pass's plan that `points` (the table so far, None before the first pass)
    leaves worth measuring: every one the first time; then a ceiling only while it is unclear and,
    `as_needed`, a run only where it could settle a verdict (`passes`)."""
    from bench.analyse.repeats import clear_ceilings, unsettled

    if points is None or points.empty:
        return planned
    wanted = unsettled(points) if as_needed else None
    clear = clear_ceilings(points) - (wanted or set())
    return [
        s
        for s in planned
        if (wanted is None or s.point_id in wanted) and not (s.role == "ceiling" and s.point_id in clear)
    ]


def one_more_look(specs: list[RunSpec], root: Path) -> list[RunSpec]:
    """One more repeat of each point whose verdict the noise could not settle (bench/analyse/repeats.py
    `unsettled`): a ceiling order, an efficiency near the line, the two fastest. Only in a sweep of
    two repeats or more: one repeat asks for one look (the report then leans on the assumed noise)."""
    from bench.analyse.points import write_csv

    if max(s.repeat for s in specs) < 1:
        return []
    return looks(specs, write_csv(root)[0])


def looks(specs: list[RunSpec], points: pd.DataFrame) -> list[RunSpec]:
    """`one_more_look`'s runs from the table so far: the next repeat of each point `unsettled` names."""
    from bench.analyse.repeats import unsettled

    if points.empty:
        return []
    wanted = unsettled(points)
    latest = {s.point_id: s for s in sorted(specs, key=lambda s: s.repeat)}  # the last repeat of each
    repeats = dict(zip(points.point_id, points.repeats_ok))
    return [
        dataclasses.replace(latest[pid], repeat=latest[pid].repeat + 1)
        for pid in sorted(wanted)
        if pid in latest and repeats.get(pid, 0) > 0
    ]


def profiled_spec(profile: str, specs: list[RunSpec], rows: list[dict]) -> RunSpec | None:
    """The run to trace: point `profile`'s, or with "fastest" the grid point whose ok runs had
    the highest median images/s (None when none ran)."""
    import statistics

    if profile == "fastest":
        rates: dict[str, list[float]] = {}
        grid = {s.point_id for s in specs if s.role == "point"}
        for row in rows:
            if row["point_id"] in grid and row["status"] == "ok" and not row.get("profiled"):
                rates.setdefault(row["point_id"], []).append(row["train_img_s"])
        if not rates:
            return None
        profile = max(rates, key=lambda p: statistics.median(rates[p]))
    spec = next(s for s in specs if s.point_id == profile)
    return dataclasses.replace(spec, repeat=0, profile=True)
