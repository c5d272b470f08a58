"""compare's words: the judged comparison (bench/analyse/regressions.py) as markdown, the gate's
last line and exit status, and `baseline save`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.analyse.points import current_rows
from bench.analyse.regressions import METRICS, STATUS, CompareError, Comparison, Judged
from bench.plan.knobs import KNOBS
from bench.results.store import read_json

CHECKOUT = Path(__file__).resolve().parents[2]
BASELINES = CHECKOUT / "results" / "baselines"  # where `make regress` reads them, wherever the command runs
KNOB_COLUMNS = tuple(KNOBS)


def markdown(result: Comparison, metric: str, factor: float, drop: float) -> str:
    """The comparison as a table, with the knobs that tell its rows apart."""
    direction = "higher is better" if METRICS[metric] else "lower is better"
    table = result.table.copy()
    fixed = [k for k in KNOB_COLUMNS if k in table and table[k].nunique(dropna=False) == 1 and len(table) > 1]
    table = table.drop(columns=fixed).astype(object)
    for column in ("baseline", "current"):
        table[column] = table[column].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    if "ratio" in table:
        table["ratio"] = table["ratio"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    lines = [
        f"`{metric}` ({direction}); a regression is worse by more than {factor:g}x beyond the noise, a pass "
        f"rules out a {drop:.0%} drop (bench/analyse/regressions.py); the noise: {result.noise.says()}.",
        "",
        table.fillna("").to_markdown(index=False),
        "",
    ]
    lines += [f"Note: {n}." for n in result.notes]
    lines.append(f"{result.regressions} regression(s), {result.unjudged} change(s) it cannot judge.")
    return "\n".join(lines)


def render(judged: Judged, measured: list[str] | None = None) -> tuple[str, int]:
    """(the gate in markdown, its exit status: STATUS); `measured`: what the gate measured again."""
    metric, factor = judged.metric, judged.factor
    lines = [f"Machines: {judged.machines}.", ""]
    if judged.yardstick is not None:
        lines += [
            "## Against the geometric mean of each run (gated)",
            "",
            markdown(judged.yardstick, metric, factor, judged.drop),
        ]
        lines.append("")
    shown = "" if judged.absolute.gated else " (shown, not gated: other hardware)"
    lines += ["## Absolute" + shown, "", markdown(judged.absolute, metric, factor, judged.drop)]
    lines += [f"\nMeasured again: {m}." for m in measured or []]
    counted = judged.counted
    regressions, unjudged = sum(c.regressions for c in counted), sum(c.unjudged for c in counted)
    said = {"regression": "FAIL", "cannot judge": "cannot judge", "pass": "pass"}[judged.status]
    lines.append(
        f"\ngate: {said} ({regressions} regression(s), {unjudged} change(s) it cannot judge; "
        f"exit {STATUS[judged.status]})"
    )
    return "\n".join(lines), STATUS[judged.status]


def save_baseline(folder: Path, force: bool = False, target: Path | None = None) -> Path:
    """`target`, by default the checkout's results/baselines/<gpu>/<preset>.csv (the folder's
    points, with their noise and repeats), and beside it .env.json (its machine) and .runs.jsonl (the
    runs behind the points: each metric's own spread); an existing baseline is replaced only with `force`."""
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
    rows = current_rows(folder)[0]
    target.with_suffix(".runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return target
