"""Did this change make training slower? Two results judged configuration by configuration, by the
confidence of the rule every verdict uses (bench/analyse/noise.py). bench/output/compare.py formats
what this finds; bench/regress.py measures more where it cannot decide.

Each configuration's change (log current over log baseline, matched by knobs, a blank knob read as
its default) is held against three lines, each beyond the noise (both sides' spreads pooled, each
figure's own repeats): worse than `factor` is a regression, better than `factor` is better, and a
drop of `drop` (30%) ruled out is a pass. Where none holds the noise cannot decide: the gate
measures more, and says "cannot judge" only when its budget is spent. A side whose figure was
measured while other work took over BUSY_PCT of the CPU (bench/plan/knobs.py) says little: the
current's is measured again (a quieter run replaces a loaded one, bench/analyse/points.py), the
baseline's cannot be.

Hardware and software are told apart (bench/results/machine.py). On the same hardware the absolute
figures are gated, and a software change is named as the likely cause. On other hardware each
configuration is gated against the geometric mean of its run (every configuration, the base
included), which cancels a machine that is uniformly faster or slower; the absolute figures are
shown, and gated only with `across=True`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

from bench.analyse.bounds import rate_of
from bench.analyse.decisions import against_run, decide, margins, repeats_to_decide
from bench.analyse.noise import PRIOR, Noise, combined, of_points, pooled
from bench.analyse.points import current_rows, read_csv, records
from bench.plan.knobs import BUSY_PCT, KNOBS
from bench.results.machine import changes, hardware, software
from bench.results.store import read_json

# Metrics and whether higher is better.
METRICS = {
    "train_img_s": True,
    "pipeline_img_s": True,
    "model_img_s": True,
    "efficiency": True,
    "mfu": True,
    "total_s": False,
    "epoch_s_median": False,
    "first_epoch_s": False,
}
TIMES = ("total_s", "epoch_s_median", "first_epoch_s")  # each with its own spread; the others are rates of runs
KNOB_COLUMNS = tuple(KNOBS)
FACTOR = 1.10  # how much worse counts, where neither the command line nor the preset's gate says
GATED_DROP = 0.3  # the drop a gate must catch: a pass rules it out

# The exit status of `gpubench compare`.
STATUS = {"pass": 0, "regression": 1, "cannot judge": 3}


class CompareError(ValueError):
    """Inputs that cannot be compared; the message is one line."""


@dataclass
class Side:
    """One result: its points, its env.json, and its runs where kept (each metric's own spread)."""

    points: pd.DataFrame
    env: dict
    runs: pd.DataFrame | None = None


@dataclass
class Comparison:
    """What compare found: the table, row by row, the regressions and the changes it cannot judge,
    notes, and the current configurations to measure again (point_id -> "within the noise" or "under load")."""

    table: pd.DataFrame
    regressions: int
    notes: list[str] = field(default_factory=list)
    unjudged: int = 0
    to_measure: dict[str, str] = field(default_factory=dict)
    gated: bool = True
    noise: Noise = PRIOR  # what it judged by


def load(path: str | Path) -> Side:
    """A results folder (points.csv, env.json, its runs) or a saved baseline CSV (with its
    <name>.env.json and <name>.runs.jsonl beside it)."""
    path = Path(path)
    if path.is_dir():
        points_file, env_file = path / "points.csv", path / "env.json"
    else:
        points_file, env_file = path, path.with_suffix(".env.json")
    if not points_file.is_file() and path.suffix == ".csv":
        raise CompareError(f"no baseline {path}: save one with `gpubench baseline save <results folder>`")
    if not points_file.is_file():
        raise CompareError(f"{path}: no points.csv (run a sweep there, or give a baseline .csv)")
    points = read_csv(points_file)
    if "role" in points:
        points = points[points.role == "point"]
    if path.is_dir():
        rows = current_rows(path)[0]
    else:
        runs_file = path.with_suffix(".runs.jsonl")
        rows = [json.loads(line) for line in runs_file.read_text().splitlines() if line] if runs_file.is_file() else []
    runs = pd.DataFrame([r for r in rows if not r.get("profiled")]) if rows else None
    return Side(points, read_json(env_file), runs)


def noise_of(side: Side, metric: str) -> Noise:
    """The spread of one run's log `metric` on a side. A rate's is the folder's pooled log-rate spread
    (points and ceilings alike) as points.csv gives it, or from the runs, or (an old baseline) from its
    points' ranges; a time's is its own, from the runs, or from total_s's ranges; else PRIOR."""
    column = metric if metric in TIMES else "train_img_s"
    if column == "train_img_s" and "noise_sd" in side.points and side.points.noise_sd.notna().any():
        return of_points(side.points)
    if side.runs is not None and column in side.runs and "point_id" in side.runs:
        return pooled(side.runs, column)
    return from_ranges(side.points, column)


def from_ranges(points: pd.DataFrame, column: str) -> Noise:
    """The log spread estimated from each point's min and max over its repeats (range / its expected
    value for n normal draws), pooled by degrees of freedom: what a baseline saved before the noise
    columns existed still says."""
    if f"{column}_min" not in points or f"{column}_max" not in points:
        return PRIOR
    n = pd.to_numeric(points.repeats_ok, errors="coerce").fillna(0).to_numpy(int)
    lo, hi = (pd.to_numeric(points[f"{column}_{e}"], errors="coerce").to_numpy(float) for e in ("min", "max"))
    ok = (n >= 2) & (lo > 0) & (hi > 0)
    if not ok.any():
        return PRIOR
    x = np.linspace(-8, 8, 4001)
    cdf = special.ndtr(x)[None, :]
    expected = np.trapezoid(1 - cdf ** n[ok, None] - (1 - cdf) ** n[ok, None], x, axis=1)
    sd = np.log(hi[ok] / lo[ok]) / expected
    df = n[ok] - 1
    return Noise(max(math.sqrt(float((df * sd**2).sum() / df.sum())), 1e-6), float(df.sum()))


def figure(p: dict, metric: str) -> tuple[float, float]:
    """(a point's metric as the noise rule compares it, its variance in runs' units: the sum of 1/n
    over the repeats of each rate it is made of): a rate's geometric mean over its own repeats (a
    ceiling's, the ceiling's), efficiency with both rates' repeats."""
    if metric in ("train_img_s", "pipeline_img_s", "model_img_s"):
        value, n = rate_of(p, metric)
        return value, 1 / max(n, 1)
    own = 1 / max(int(p.get("repeats_ok") or 1), 1)
    if metric == "efficiency":
        lower = "pipeline_img_s" if p.get("pipeline_img_s", 0) <= p.get("model_img_s", 0) else "model_img_s"
        return p[metric], own + 1 / max(rate_of(p, lower)[1], 1)
    return p[metric], own


def match_key(row) -> tuple:
    """A configuration's knobs, numbers as numbers, a blank or missing one (older baselines) as its default."""

    def plain(name):
        value = row.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
            value = KNOBS[name].default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value).lower() if isinstance(value, (bool, str)) or hasattr(value, "dtype") else value

    return tuple((name, plain(name)) for name in KNOB_COLUMNS)


def _busy(point) -> str | None:
    others = point.get("others_cpu_pct")
    return f"other work took {others:.0f}% of the CPU" if pd.notna(others) and others > BUSY_PCT else None


def compare(base: Side, cur: Side, metric="train_img_s", factor=FACTOR, drop=GATED_DROP, yardstick=False) -> Comparison:
    """Baseline and current matched by their knobs, each configuration marked by the rule above;
    `yardstick`: each against the geometric mean of its run's configurations that both sides measured."""
    if metric not in METRICS:
        raise CompareError(f"unknown metric {metric!r}; metrics are: {', '.join(METRICS)}")
    if factor <= 1:
        raise CompareError(f"--factor {factor}: must be above 1 (1.10 means 10% worse)")
    for side, frame in (("baseline", base.points), ("current", cur.points)):
        if metric not in frame:
            raise CompareError(f"the {side} has no {metric} column")
    sign = 1 if METRICS[metric] else -1
    noise = combined(noise_of(base, metric), noise_of(cur, metric))
    b_rows = {match_key(r): r for r in records(base.points)}
    c_rows = {match_key(r): r for r in records(cur.points)}
    rows, judged = [], []
    for key in list(b_rows) + [k for k in c_rows if k not in b_rows]:
        b, c = b_rows.get(key), c_rows.get(key)
        row = {k: (b or c).get(k) for k in KNOB_COLUMNS if k in (b or c)}
        row["baseline"], row["current"] = (None if v is None else v[metric] for v in (b, c))
        if b is None or c is None:
            row["mark"] = "only in current" if b is None else "only in baseline"
        elif not (row["baseline"] > 0 and row["current"] > 0):  # NaN (failed) or 0
            row["mark"] = "failed in " + " and ".join(
                s for s, v in (("baseline", b), ("current", c)) if not v[metric] > 0
            )
        else:
            judged.append((len(rows), b, c))
        rows.append(row)
    result = Comparison(pd.DataFrame(rows), 0, noise=noise)
    if yardstick and len(judged) == 1:  # its run's geometric mean is itself
        rows[judged[0][0]]["mark"] = "alone in its run: nothing to hold it against"
        result.table = pd.DataFrame(rows)
        return result
    if not judged:
        return result
    (lb, vb), (lc, vc) = (
        np.array([(math.log(figure(p, metric)[0]), figure(p, metric)[1]) for p in side]).T
        for side in ([b for _, b, _ in judged], [c for _, _, c in judged])
    )
    change, variance, scale = sign * (lc - lb), vb + vc, 1.0
    if yardstick:
        (lb, vb), (lc, _) = against_run(lb, vb)[:2], against_run(lc, vc)[:2]
        change, variance, scale = against_run(change, variance)
    margin = margins(noise.sd, noise.df, variance)
    verdicts = decide(change, margin, factor, drop, scale)
    undecided = []
    for (i, b, c), verdict, lbi, lci, vbi in zip(judged, verdicts, lb, lc, vb):
        row = rows[i]
        if yardstick:
            row["baseline"], row["current"] = math.exp(lbi), math.exp(lci)
        row["ratio"] = row["current"] / row["baseline"]
        worse = verdict in ("regression", "undecided")
        if worse and _busy(c):
            row["mark"] = f"worse, cannot judge (current: {_busy(c)})"
            result.to_measure[c["point_id"]] = "under load"
        elif verdict != "regression" and _busy(b):
            row["mark"] = f"cannot judge (baseline: {_busy(b)})"
        elif verdict == "undecided":
            row["mark"] = f"cannot judge yet: a {drop:.0%} drop not ruled out"
            result.to_measure[c["point_id"]] = "within the noise"
            undecided.append(vbi)
        else:
            change, line = sign * math.log(row["ratio"]), scale * math.log(factor)  # beyond the factor, not the noise:
            within = f"worse, within noise; a {drop:.0%} drop ruled out" if change < -line else ""
            row["mark"] = {"regression": "REGRESSION", "better": "better"}.get(
                verdict, within or ("better, within noise" if change > line else "")
            )
        result.regressions += row["mark"] == "REGRESSION"
        result.unjudged += "cannot judge" in row["mark"]
    result.table = pd.DataFrame(rows)
    if undecided:
        needed = repeats_to_decide(noise, max(undecided), scale * math.log(1 / ((1 - drop) * factor)))
        result.notes.append(
            f"within the noise with a {drop:.0%} drop not ruled out: cannot judge; "
            + (
                "deciding needs more than 64 repeats a side at this noise"
                if needed is None
                else f"deciding needs {needed[0]} repeats of the current"
                + (
                    f" and a baseline of {needed[1]} repeats (save it again from a sweep with --repeat {needed[1]})"
                    if needed[1]
                    else ""
                )
            )
        )
    if any("(baseline: other work" in m for m in result.table["mark"]):
        notes = f"the baseline was measured while other work took over {BUSY_PCT:g}% of the CPU"
        result.notes.append(f"{notes}: save it again on a machine left to the sweep")
    if any("(current: other work" in m for m in result.table["mark"]):
        result.notes.append(
            f"worse on figures measured while other work took over {BUSY_PCT:g}% of the CPU: cannot judge; "
            "--remeasure measures them again, on a machine left to the sweep"
        )
    return result


@dataclass
class Judged:
    """A gate's comparisons: the absolute one (gated on the same hardware, or with `across`) and,
    on other hardware, each configuration against its run's geometric mean (always gated)."""

    absolute: Comparison
    yardstick: Comparison | None
    metric: str
    factor: float
    drop: float
    machines: str

    @property
    def counted(self) -> list[Comparison]:
        return [c for c in (self.absolute, self.yardstick) if c is not None and c.gated]

    @property
    def status(self) -> str:
        """The verdict that picks the exit status (STATUS): a regression outranks a change it cannot judge."""
        counted = self.counted
        if any(c.regressions for c in counted):
            return "regression"
        return "cannot judge" if any(c.unjudged for c in counted) else "pass"


def judge(
    baseline: str | Path,
    current: str | Path,
    preset_gate: dict,
    metric: str | None = None,
    factor: float | None = None,
    strict: bool = False,
    across: bool = False,
) -> Judged:
    """The gate of two results: hardware and software told apart, the comparisons that set the exit status."""
    metric = metric or preset_gate.get("metric", "train_img_s")
    factor = factor or preset_gate.get("factor", FACTOR)
    drop = preset_gate.get("drop", GATED_DROP)
    base, cur = load(baseline), load(current)
    other_hardware = changes(hardware(base.env), hardware(cur.env))
    if strict and other_hardware:
        raise CompareError(f"--strict: the two results come from other hardware ({'; '.join(other_hardware)})")
    absolute = compare(base, cur, metric, factor, drop)
    absolute.gated = not other_hardware or across
    if other_hardware:
        machines = (
            f"other hardware ({'; '.join(other_hardware)}): each configuration is gated against the geometric "
            "mean of its run; the absolute figures are "
            + ("gated too (--across-hardware)" if across else "shown, not gated (--across-hardware gates them)")
        )
        return Judged(
            absolute, compare(base, cur, metric, factor, drop, yardstick=True), metric, factor, drop, machines
        )
    other_software = changes(software(base.env), software(cur.env))
    machines = (
        f"same hardware, other software ({'; '.join(other_software)}): the likely cause of any change below"
        if other_software
        else "same hardware and software"
    )
    return Judged(absolute, None, metric, factor, drop, machines)
