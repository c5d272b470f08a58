"""compare's words: the judged comparison (bench/analyse/regressions.py) as markdown, the gate's
last line and exit status, and `baseline save`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analyse.regressions import METRICS, STATUS, CompareError, Comparison, gated, judge
from bench.plan.knobs import KNOBS
from bench.results.store import read_json

CHECKOUT = Path(__file__).resolve().parents[2]
BASELINES = CHECKOUT / "results" / "baselines"  # where `make regress` reads them, wherever the command runs
KNOB_COLUMNS = tuple(KNOBS)


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
    lines = [
        f"`{metric}` ({direction}); a regression is worse by more than {factor:g}x beyond the noise "
        f"(bench/analyse/noise.py).",
        "",
        table.fillna("").to_markdown(index=False),
        "",
    ]
    lines += [f"Note: {n}." for n in result.notes]
    lines.append(f"{result.regressions} regression(s), {result.unjudged} change(s) it cannot judge.")
    return "\n".join(lines)


def gate(
    baseline: str | Path,
    current: str | Path,
    preset_gate: dict,
    metric: str | None = None,
    factor: float | None = None,
    strict: bool = False,
) -> tuple[str, int]:
    """(the comparison in markdown, its exit status: STATUS)."""
    absolute, ratios, metric, factor = judge(baseline, current, preset_gate, metric, factor, strict)
    counted = gated(absolute, ratios)
    shown = (
        ""
        if any(c is absolute for c in counted)
        else " (shown, not gated: another machine; the ratios within each run are)"
    )
    lines = ["## Absolute" + shown, "", markdown(absolute, metric, factor), ""]
    if ratios is not None:
        lines += ["## Ratios within each run (gated)", "", markdown(ratios, metric, factor)]
    regressions, unjudged = sum(c.regressions for c in counted), sum(c.unjudged for c in counted)
    status = "regression" if regressions else "cannot judge" if unjudged else "pass"
    said = {"regression": "FAIL", "cannot judge": "cannot judge", "pass": "pass"}[status]
    lines.append(
        f"\ngate: {said} ({regressions} regression(s), {unjudged} change(s) it cannot judge; exit {STATUS[status]})"
    )
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
