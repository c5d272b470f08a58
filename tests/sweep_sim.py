"""A sweep as it runs, simulated with the project's own functions and no process: a preset's grid
and ceiling probes as the planner builds them, each pass's runs as bench/passes.py chooses them
(as-needed repeats, ceilings again while unclear), the one more look, points.table after every
pass and at the end, the bounds and the fastest as the report states them. Each run's rate is its
truth times lognormal noise. `python -m tests.sweep_sim` prints the table of error rates."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from bench.analyse.points import runnable, table
from bench.analyse.verdicts import named_fastest
from bench.passes import looks, pass_runs
from bench.plan.grid import build_grid, ceiling_probes, pipeline_ceiling
from bench.plan.presets import load_preset
from bench.run.failures import in_order

REFERENCE = Path(__file__).parents[1] / "results" / "reference" / "cpu" / "quick"

FIELDS = {"status": "ok", "cpu_util_mean": np.nan, "proc_cpu_pct_mean": np.nan, "total_s": 10.0, "window_s": 6.0}
FIELDS |= {"val_s_total": 0.0, "checkpoint_s_total": 0.0, "matmul_precision": "highest"}


@functools.lru_cache(maxsize=4)
def plan(preset: str):
    """(the grid, its ceiling probes, whether later repeats run as needed) of a shipped preset."""
    p = load_preset(preset)
    grid, _ = build_grid(p.knob_sets(), [], p.repeat, choose_backend=lambda gpus=1: "tensorflow")
    return grid, ceiling_probes(grid), p.repeat_as_needed


def truths(preset: str, case: str) -> dict[str, float]:
    """point_id -> its true images/s. `equal`: every ceiling 100, every point 95; `apart`: the
    pipelines alone 100, the models alone 130 (input-bound); `fastest`: every point 95 but the
    first, 30% faster, the ceilings far above; `reference`: quick's medians on the CPU machine."""
    if case == "reference":  # quick as it ran on the 2-core CPU machine: its medians as the truth
        measured = pd.read_csv(REFERENCE / "points.csv")
        return dict(zip(measured.point_id, measured.train_img_s))
    grid, probes, _ = plan(preset)
    points = list(dict.fromkeys(s.point_id for s in grid))
    pipeline = {pipeline_ceiling(s).point_id for s in grid}
    rate = {"equal": (100.0, 100.0, 95.0), "apart": (100.0, 130.0, 95.0), "fastest": (1000.0, 2000.0, 95.0)}[case]
    truth = {s.point_id: rate[0] if s.point_id in pipeline else rate[1] for s in probes}
    truth |= {pid: rate[2] for pid in points}
    if case == "fastest":
        truth[points[0]] *= 1.3
    return truth


class Sweep(NamedTuple):
    """One simulated sweep's outcome."""

    points: pd.DataFrame  # the final table's configurations
    named: str | None  # the point_id named fastest, None where none is
    runs: int


def sweep(preset: str, truth: dict[str, float], sd: float, rng: np.random.Generator) -> Sweep:
    """One sweep of `preset` whose runs draw truth x exp(N(0, sd))."""
    grid, probes, as_needed = plan(preset)
    rows: list[dict] = []

    def measure(specs) -> None:
        for s, e in zip(specs, rng.normal(0.0, sd, len(specs))):
            rows.append({**s.knobs(), **FIELDS, "point_id": s.point_id, "run_id": s.run_id, "role": s.role})
            rows[-1] |= {"repeat": s.repeat, "train_img_s": truth[s.point_id] * float(np.exp(e))}

    order = in_order(probes, grid)
    for r in sorted({s.repeat for s in order}):
        measure(pass_runs([s for s in order if s.repeat == r], table(rows, {}, {}) if r else None, as_needed))
    if max(s.repeat for s in grid) >= 1:
        measure(looks(probes + grid, table(rows, {}, {})))
    points = table(rows, {}, {})
    best = named_fastest(points)
    return Sweep(runnable(points), best, len(rows))


def rates(preset: str, case: str, sd: float, sweeps: int, seed: int = 0) -> dict[str, float]:
    """Over `sweeps` sweeps: the share of configurations and of sweeps (any configuration) whose bound
    is named and the share named right, the share of sweeps naming the true fastest and a wrong
    one, and the runs a sweep took on average."""
    truth = truths(preset, case)
    rng = np.random.default_rng(seed)
    results = [sweep(preset, truth, sd, rng) for _ in range(sweeps)]
    named = [r.points.bound.isin(["input", "compute"]) & (r.points.bound_doubt == "") for r in results]
    right = [n & (r.points.bound == "input") for n, r in zip(named, results)]
    fastest = max(truth, key=lambda pid: truth[pid] if pid in set(results[0].points.point_id) else 0)
    return {
        "configurations": float(np.mean([n.mean() for n in named])),
        "sweeps": float(np.mean([n.any() for n in named])),
        "found": float(np.mean([n.mean() for n in right])),
        "fastest": float(np.mean([r.named == fastest for r in results])),
        "wrong fastest": float(np.mean([r.named not in (None, fastest) for r in results])),
        "runs": float(np.mean([r.runs for r in results])),
    }


def main(sweeps: int = 200, sds=(0.05, 0.08, 0.15)) -> None:
    """The table: per preset and noise, the shares `rates` gives for each case."""
    print(
        "| preset | noise | equal: configurations | equal: sweeps | runs | 30% apart found | runs "
        "| 30% faster named | wrong fastest | runs |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for preset in ("quick", "mine"):
        for sd in sds:
            equal, apart, fastest = (rates(preset, case, sd, sweeps) for case in ("equal", "apart", "fastest"))
            print(
                f"| {preset} | {sd:.0%} | {equal['configurations']:.1%} | {equal['sweeps']:.1%} | {equal['runs']:.0f} "
                f"| {apart['found']:.1%} | {apart['runs']:.0f} | {fastest['fastest']:.1%} "
                f"| {fastest['wrong fastest']:.1%} | {fastest['runs']:.0f} |",
                flush=True,
            )
    real = rates("quick", "reference", 0.069, sweeps)  # the reference sweep's pooled noise
    print(
        f"quick on its reference rates (results/reference/cpu/quick, 6.9% noise): bounds named {real['found']:.1%} of "
        f"configurations, the fastest named in {real['fastest']:.1%} of sweeps, {real['runs']:.1f} runs"
    )


if __name__ == "__main__":
    import sys

    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200, tuple(float(sd) for sd in sys.argv[2:]) or (0.05, 0.08, 0.15))
