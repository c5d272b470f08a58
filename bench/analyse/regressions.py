"""Did this change make training slower? Two results judged configuration by configuration, by the
rule every verdict uses (bench/analyse/noise.py). bench/output/compare.py formats what this finds.

A configuration regressed when its metric is worse than the baseline's by more than `factor`
beyond the noise (the two sides' pooled spreads, the repeats of each); it is better when it is
better by more than `factor` beyond the noise. Worse by more than `factor` but within the noise
passes where a GATED_DROP drop is ruled out beyond the noise, and otherwise cannot be judged (the
repeats a side would need are said). On one machine (the fingerprints
match) the absolute figures are gated; across machines only ratios measured within each run (a
preset's [gate] `relative`), which cancel the machine. Configurations are matched by their knobs,
a blank knob read as its default (a schema that later filled a blank with False still matches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.analyse.noise import combined, differ, of_points, repeats_to_see
from bench.analyse.points import pairs, read_csv
from bench.plan.knobs import KNOBS
from bench.results.machine import fingerprint
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
KNOB_COLUMNS = tuple(KNOBS)
FACTOR = 1.10  # how much worse counts, where neither the command line nor the preset's gate says
# Other work's share of the CPU above which a side's rates say more about the machine than the code:
# quiet runs here saw a median of 3-4% (at most 25%); two quick sweeps beside other work (42-80%)
# differed by up to 3.4x on the same code.
BUSY_PCT = 30.0
GATED_DROP = 0.3  # the drop a gate must catch: the repeats it needs are said where it cannot

# The exit status of `gpubench compare`.
STATUS = {"pass": 0, "regression": 1, "cannot judge": 3}


class CompareError(ValueError):
    """Inputs that cannot be compared; the message is one line."""


@dataclass
class Comparison:
    """What compare found: the table, row by row, the regressions and changes it cannot judge, and notes."""

    table: pd.DataFrame
    regressions: int
    notes: list[str] = field(default_factory=list)
    same_machine: bool = True
    unjudged: int = 0

    @property
    def status(self) -> str:
        """The verdict that picks the exit status (STATUS): a regression outranks a change it cannot judge."""
        return "regression" if self.regressions else "cannot judge" if self.unjudged else "pass"


def load(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """(points, env) from a results folder (points.csv, env.json) or a saved baseline CSV
    (with its <name>.env.json beside it)."""
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
    return points, read_json(env_file)


def match_key(row) -> tuple:
    """A configuration's knobs, a blank read as the knob's default and numbers as numbers."""

    def plain(name):
        value = row.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
            value = KNOBS[name].default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value).lower() if isinstance(value, (bool, str)) or hasattr(value, "dtype") else value

    return tuple((name, plain(name)) for name in KNOB_COLUMNS if name in row)


def _busy(point) -> str | None:
    others = point.get("others_cpu_pct")
    return f"other work took {others:.0f}% of the CPU" if pd.notna(others) and others > BUSY_PCT else None


def compare(
    baseline: pd.DataFrame,
    current: pd.DataFrame,
    metric: str = "train_img_s",
    factor: float = FACTOR,
    base_env: dict | None = None,
    current_env: dict | None = None,
    scale: float = 1.0,
) -> Comparison:
    """Baseline and current matched by their knobs, each configuration marked by the rule above."""
    if metric not in METRICS:
        raise CompareError(f"unknown metric {metric!r}; metrics are: {', '.join(METRICS)}")
    if factor <= 1:
        raise CompareError(f"--factor {factor}: must be above 1 (1.10 means 10% worse)")
    for side, frame in (("baseline", baseline), ("current", current)):
        if metric not in frame:
            raise CompareError(f"the {side} has no {metric} column")
    higher = METRICS[metric]
    same = fingerprint(base_env or {}) == fingerprint(current_env or {})
    notes = (
        []
        if same
        else [f"different machines: baseline {fingerprint(base_env or {})}, current {fingerprint(current_env or {})}"]
    )
    noise = combined(of_points(baseline, scale), of_points(current, scale))
    base = {match_key(r): r for r in baseline.to_dict("records")}
    cur = {match_key(r): r for r in current.to_dict("records")}
    rows, regressions, unjudged, needed = [], 0, 0, 0
    for key in list(base) + [k for k in cur if k not in base]:
        b, c = base.get(key), cur.get(key)
        row = {k: (b or c).get(k) for k in KNOB_COLUMNS + ("relative_to",) if k in (b or c)}
        row["baseline"] = None if b is None else b[metric]
        row["current"] = None if c is None else c[metric]
        if b is None or c is None:
            row["mark"] = "only in current" if b is None else "only in baseline"
        elif pd.isna(b[metric]) or pd.isna(c[metric]):
            row["mark"] = "failed in " + " and ".join(
                s for s, v in (("baseline", b), ("current", c)) if pd.isna(v[metric])
            )
        else:
            row["ratio"] = c[metric] / b[metric]
            n_b, n_c = (int(v.get("repeats_ok") or 1) if pd.notna(v.get("repeats_ok")) else 1 for v in (b, c))
            sign = 1 if higher else -1
            worse = differ(c[metric], n_c, b[metric], n_b, noise, ratio=factor**-sign) == -sign
            better = differ(c[metric], n_c, b[metric], n_b, noise, ratio=factor**sign) == sign
            beyond = (row["ratio"] < 1 / factor) if higher else (row["ratio"] > factor)
            busy = [f"{side}: {w}" for side, w in (("baseline", _busy(b)), ("current", _busy(c))) if w]
            if (worse or beyond) and busy:
                row["mark"] = "worse, cannot judge (" + "; ".join(busy) + ")"
                unjudged += 1
            elif worse:
                row["mark"] = "REGRESSION"
                regressions += 1
            elif better:
                row["mark"] = "better"
            elif beyond and differ(c[metric], n_c, b[metric], n_b, noise, ratio=(1 - GATED_DROP) ** sign) == sign:
                row["mark"] = f"worse, within noise; a {GATED_DROP:.0%} drop ruled out"
            elif beyond:
                row["mark"] = "worse, within noise"
                unjudged += 1
                needed = max(needed, repeats_to_see(GATED_DROP, noise))
            else:
                row["mark"] = ""
        rows.append(row)
    if needed:
        notes.append(
            f"worse by more than {factor:g}x but within the noise ({noise.says()}), and a {GATED_DROP:.0%} "
            f"drop not ruled out: cannot judge; "
            f"to catch a {GATED_DROP:.0%} drop here a gate needs {needed} repeats a side"
        )
    if any(str(r.get("mark", "")).startswith("worse, cannot judge") for r in rows):
        notes.append(
            f"worse on figures measured while other work took over {BUSY_PCT:g}% of the CPU: cannot judge; "
            f"run on a machine left to the sweep"
        )
    return Comparison(pd.DataFrame(rows), regressions, notes, same, unjudged)


def relative(points: pd.DataFrame, metric: str, knob: str, base) -> pd.DataFrame:
    """Each point's metric over its twin's at `knob=base`, measured in the same run: on a shared
    machine such ratios drift far less than absolute figures."""
    joined = pairs(points, knob, base)
    if joined.empty:
        return pd.DataFrame()
    out = joined[[k for k in KNOB_COLUMNS if k in joined]].copy()
    out["point_id"] = joined.point_id + f"/{knob}={base}"
    out["relative_to"] = f"{knob}={base}"
    out[metric] = joined[metric] / joined[f"{metric}_base"]
    for column, worse in (("repeats_ok", "min"), ("others_cpu_pct", "max")):
        if column in joined and f"{column}_base" in joined:  # a ratio is as sure as the less sure of its points
            out[column] = joined[[column, f"{column}_base"]].agg(worse, axis=1)
    for column in ("noise_sd", "noise_df"):
        if column in joined:
            out[column] = joined[column]
    return out


def relative_all(points: pd.DataFrame, metric: str, gates: list) -> pd.DataFrame:
    """The ratios for every relative gate (knob, base) of a preset in one table, for compare to judge."""
    return pd.concat([relative(points, metric, knob, base) for knob, base in gates], ignore_index=True)


def judge(
    baseline: str | Path,
    current: str | Path,
    preset_gate: dict,
    metric: str | None = None,
    factor: float | None = None,
    strict: bool = False,
) -> tuple[Comparison, Comparison | None, str, float]:
    """(the absolute comparison, the ratios' or None, the metric, the factor) of a gate: on one
    machine the absolute figures are gated (and the ratios, where the preset has them); across
    machines the ratios alone (Comparison.same_machine says which)."""
    metric = metric or preset_gate.get("metric", "train_img_s")
    factor = factor or preset_gate.get("factor", FACTOR)
    (base, base_env), (cur, cur_env) = load(baseline), load(current)
    if strict and fingerprint(base_env) != fingerprint(cur_env):
        raise CompareError(
            "--strict: the two results come from different machines "
            f"({fingerprint(base_env)} vs {fingerprint(cur_env)})"
        )
    absolute = compare(base, cur, metric, factor, base_env, cur_env)
    ratios = None
    if preset_gate.get("relative"):
        ratios = compare(
            relative_all(base, metric, preset_gate["relative"]),
            relative_all(cur, metric, preset_gate["relative"]),
            metric,
            factor,
            base_env,
            cur_env,
            scale=math.sqrt(2),
        )
    return absolute, ratios, metric, factor


def gated(absolute: Comparison, ratios: Comparison | None) -> list[Comparison]:
    """The comparisons that set the exit status: the absolute one on one machine, the ratios always."""
    return ([absolute] if absolute.same_machine or ratios is None else []) + ([ratios] if ratios is not None else [])
