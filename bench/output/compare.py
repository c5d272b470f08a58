"""Did this change make training slower? Two results compared configuration by configuration.

The asv rule, where the figures can bear it: a configuration regressed when its metric got worse
by more than `factor` AND the two sets of repeats do not overlap (the worst baseline repeat is still
better than the best current one). A configuration worse by more than `factor` is judged only where
both sides have a spread (two repeats or more) and windows long enough to time well (SHORT_S);
otherwise, and where the repeats overlap, compare cannot judge it. The exit status is the gate:
0 pass, 1 a regression, 2 inputs that cannot be compared, 3 no regression but a change it cannot
judge (STATUS), so that a gate neither fails on noise nor passes a real drop as if it were none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.results.machine import fingerprint
from bench.analyse.points import SHORT_S, pairs, read_csv
from bench.plan.knobs import KNOBS
from bench.results.store import read_json

# Metrics and whether higher is better; the gate reads the repeats' min and max where kept.
METRICS = {
    "train_img_s": True, "pipeline_img_s": True, "model_img_s": True, "efficiency": True, "mfu": True,
    "total_s": False, "epoch_s_median": False, "first_epoch_s": False,
}
KNOB_COLUMNS = tuple(KNOBS)
FACTOR = 1.10  # how much worse counts, where neither the command line nor the preset's gate says
# Other work's share of the CPU above which a side's rates say more about the machine than the code:
# quiet runs here saw a median of 3-4% (at most 25%); two quick sweeps beside other work (42-80%)
# differed by up to 3.4x on the same code.
BUSY_PCT = 30.0
CHECKOUT = Path(__file__).resolve().parents[2]
BASELINES = CHECKOUT / "results" / "baselines"  # where `make regress` reads them, wherever the command runs


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
    unjudged: int = 0  # worse by more than the factor, but the figures cannot say it is real

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
    env = read_json(env_file)
    return points, env


def _bounds(points: pd.DataFrame, metric: str) -> tuple[pd.Series, pd.Series]:
    """The repeats' range of the metric; a single value where no range was kept."""
    low = points.get(f"{metric}_min", points[metric])
    high = points.get(f"{metric}_max", points[metric])
    return low.fillna(points[metric]), high.fillna(points[metric])


def _unjudgeable(point) -> str | None:
    """Why a side's figures cannot carry a verdict, or None: no spread (one repeat), windows too
    short to time well, or other work taking BUSY_PCT of the machine's CPU while it ran. A figure a
    table does not hold is taken as sufficient."""
    repeats, window, others = point.get("repeats_ok"), point.get("window_s"), point.get("others_cpu_pct")
    if pd.notna(repeats) and repeats < 2:
        return "one repeat, no spread"
    if pd.notna(window) and window < SHORT_S:
        return f"{window:.1f} s windows"
    if pd.notna(others) and others > BUSY_PCT:
        return f"other work took {others:.0f}% of the CPU"
    return None


def compare(baseline: pd.DataFrame, current: pd.DataFrame, metric: str = "train_img_s",
            factor: float = FACTOR, base_env: dict | None = None, current_env: dict | None = None) -> Comparison:
    """Baseline and current matched by point_id, each configuration marked by the rule above."""
    if metric not in METRICS:
        raise CompareError(f"unknown metric {metric!r}; metrics are: {', '.join(METRICS)}")
    if factor <= 1:
        raise CompareError(f"--factor {factor}: must be above 1 (1.10 means 10% worse)")
    higher_better = METRICS[metric]
    notes = []
    same = fingerprint(base_env or {}) == fingerprint(current_env or {})
    if not same:
        notes.append(f"different machines: baseline {fingerprint(base_env or {})}, current {fingerprint(current_env or {})}")
    for side, frame in (("baseline", baseline), ("current", current)):
        if metric not in frame:
            raise CompareError(f"the {side} has no {metric} column")
    base = baseline.set_index("point_id")
    cur = current.set_index("point_id")
    rows, regressions = [], 0
    for pid in list(base.index) + [p for p in cur.index if p not in base.index]:
        b = base.loc[pid] if pid in base.index else None
        c = cur.loc[pid] if pid in cur.index else None
        row = {k: (b if b is not None else c).get(k) for k in KNOB_COLUMNS + ("relative_to",)
               if k in (base.columns if b is not None else cur.columns)}
        row["baseline"] = None if b is None else b[metric]
        row["current"] = None if c is None else c[metric]
        if b is None or c is None:
            row["mark"] = "only in current" if b is None else "only in baseline"
        elif pd.isna(b[metric]) or pd.isna(c[metric]):
            row["mark"] = "failed in " + " and ".join(s for s, v in (("baseline", b), ("current", c)) if pd.isna(v[metric]))
        else:
            ratio = c[metric] / b[metric]
            row["ratio"] = ratio
            worse = ratio < 1 / factor if higher_better else ratio > factor
            better = ratio > factor if higher_better else ratio < 1 / factor
            b_low, b_high = (v[pid] for v in _bounds(base, metric))
            c_low, c_high = (v[pid] for v in _bounds(cur, metric))
            apart = c_high < b_low if higher_better else c_low > b_high
            why = [f"{side}: {w}" for side, w in (("baseline", _unjudgeable(b)), ("current", _unjudgeable(c))) if w]
            if worse and why:
                row["mark"] = "worse, cannot judge (" + "; ".join(why) + ")"
            elif worse and apart:
                row["mark"] = "REGRESSION"
                regressions += 1
            elif worse:
                row["mark"] = "worse, within noise"
            elif better:
                row["mark"] = "better"
            else:
                row["mark"] = ""
        rows.append(row)
    table = pd.DataFrame(rows)
    marks = table.get("mark", pd.Series(dtype=str)).fillna("")
    noisy, short = (marks == "worse, within noise").sum(), marks.str.startswith("worse, cannot judge").sum()
    if noisy:
        notes.append(f"{noisy} configuration(s) worse by more than {factor:g}x but within the repeats' "
                     f"spread: cannot judge; more repeats or epochs would tell")
    if short:
        notes.append(f"{short} configuration(s) worse by more than {factor:g}x on figures that cannot bear a "
                     f"verdict (one repeat, windows under {SHORT_S:g} s, or other work taking over {BUSY_PCT:g}% of "
                     f"the CPU): cannot judge; raise --repeat or epochs, or run on a machine left to the sweep")
    return Comparison(table, regressions, notes, same, unjudged=int(noisy + short))


def relative(points: pd.DataFrame, metric: str, knob: str, base) -> pd.DataFrame:
    """Each point's metric over its twin's at `knob=base`, measured in the same run: on a shared
    machine such ratios drift far less than absolute figures. The range combines the repeats'
    ranges (worst case both ways)."""
    joined = pairs(points, knob, base)
    if joined.empty:
        return pd.DataFrame()
    low, high = _bounds(joined, metric)
    base_low = joined.get(f"{metric}_min_base", joined[f"{metric}_base"]).fillna(joined[f"{metric}_base"])
    base_high = joined.get(f"{metric}_max_base", joined[f"{metric}_base"]).fillna(joined[f"{metric}_base"])
    out = joined[[k for k in KNOB_COLUMNS if k in joined]].copy()
    out["point_id"] = joined.point_id + f"/{knob}={base}"
    out["relative_to"] = f"{knob}={base}"
    out[metric] = joined[metric] / joined[f"{metric}_base"]
    out[f"{metric}_min"], out[f"{metric}_max"] = low / base_high, high / base_low
    for column, worse in (("repeats_ok", "min"), ("window_s", "min"), ("others_cpu_pct", "max")):
        if column in joined and f"{column}_base" in joined:  # a ratio is as sure as the less sure of its points
            out[column] = joined[[column, f"{column}_base"]].agg(worse, axis=1)
    return out


def relative_all(points: pd.DataFrame, metric: str, gates: list) -> pd.DataFrame:
    """The ratios for every relative gate (knob, base) of a preset in one table, for compare to judge."""
    return pd.concat([relative(points, metric, knob, base) for knob, base in gates], ignore_index=True)


def markdown(result: Comparison, metric: str, factor: float) -> str:
    """The comparison as a table, with the knobs that tell its rows apart."""
    direction = "higher is better" if METRICS[metric] else "lower is better"
    table = result.table.copy()
    fixed = [k for k in KNOB_COLUMNS if k in table and table[k].nunique(dropna=False) == 1 and len(table) > 1]
    table = table.drop(columns=fixed)
    for column in ("baseline", "current"):
        table[column] = table[column].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    if "ratio" in table:
        table["ratio"] = table["ratio"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    lines = [f"`{metric}` ({direction}); a regression is worse by more than {factor:g}x and outside "
             f"the repeats' spread.", "", table.fillna("").to_markdown(index=False), ""]
    lines += [f"Note: {n}." for n in result.notes]
    lines.append(f"{result.regressions} regression(s), {result.unjudged} change(s) it cannot judge.")
    return "\n".join(lines)


def gate(baseline: str | Path, current: str | Path, preset_gate: dict, metric: str | None = None,
         factor: float | None = None, strict: bool = False) -> tuple[str, int]:
    """(the comparison in markdown, its exit status: STATUS). On the `cpu` label a preset whose
    gate has `relative` ratios gates only those: absolute CPU figures drift with the machine's load."""
    metric = metric or preset_gate.get("metric", "train_img_s")
    factor = factor or preset_gate.get("factor", FACTOR)
    (base, base_env), (cur, cur_env) = load(baseline), load(current)
    if strict and fingerprint(base_env) != fingerprint(cur_env):
        raise CompareError("--strict: the two results come from different machines "
                           f"({fingerprint(base_env)} vs {fingerprint(cur_env)})")
    label = read_json(Path(current) / "sweep.json").get("gpu", "")
    absolute = compare(base, cur, metric, factor, base_env, cur_env)
    gated_absolute = not (preset_gate.get("relative") and label == "cpu")
    lines = ["## Absolute" + ("" if gated_absolute else " (shown, not gated: CPU figures drift)"), "",
             markdown(absolute, metric, factor), ""]
    gated = [absolute] if gated_absolute else []
    if preset_gate.get("relative"):
        ratios = compare(relative_all(base, metric, preset_gate["relative"]),
                         relative_all(cur, metric, preset_gate["relative"]), metric, factor, base_env, cur_env)
        lines += ["## Ratios within each run (gated)", "", markdown(ratios, metric, factor)]
        gated.append(ratios)
    regressions, unjudged = sum(c.regressions for c in gated), sum(c.unjudged for c in gated)
    status = "regression" if regressions else "cannot judge" if unjudged else "pass"
    said = {"regression": "FAIL", "cannot judge": "cannot judge", "pass": "pass"}[status]
    lines.append(f"\ngate: {said} ({regressions} regression(s), {unjudged} change(s) it cannot judge; "
                 f"exit {STATUS[status]})")
    return "\n".join(lines), STATUS[status]


def save_baseline(folder: Path, force: bool = False, target: Path | None = None) -> Path:
    """`target`, by default the checkout's results/baselines/<gpu>/<preset>.csv (the folder's
    points), and .env.json beside it (its machine); an existing baseline is replaced only with `force`."""
    meta_file = folder / "sweep.json"
    if not (folder / "points.csv").is_file() or not meta_file.is_file():
        raise CompareError(f"{folder} has no points.csv and sweep.json: not a finished results folder")
    meta = read_json(meta_file)
    if target is None and not (CHECKOUT / "pyproject.toml").is_file():
        raise CompareError("gpubench runs from no checkout to keep baselines in: give --out FILE.csv")
    target = Path(target or BASELINES / meta["gpu"] / f"{meta['preset']}.csv")
    if target.exists() and not force:
        raise CompareError(f"{target} exists: --force replaces it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text((folder / "points.csv").read_text())
    if (folder / "env.json").is_file():
        target.with_suffix(".env.json").write_text((folder / "env.json").read_text())
    return target
