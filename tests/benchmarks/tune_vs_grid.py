"""The tuner against the grid it saves: `python -m tests.benchmarks.tune_vs_grid OUT [--preset NAME]
[--grid FOLDER] [--set KNOB=VALUES ...]` (`make tune-vs-grid`). Sweeps the preset, quick by default
(or reads a sweep already made, --grid), tunes from the preset's first setting into OUT/tune,
prints runs, wall time and the best setting and images/s of each, and appends them to
OUT/tune-vs-grid.jsonl. The goal (issue 27): the tuner within 5% of the grid's best in a third of
the grid's runs or fewer, counted up to the first setting that got there (the tuner walks on over
knobs the grid does not sweep: cache, uint8, XLA, larger batches). A benchmark, not a test."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd


def gpubench(*args: str) -> float:
    """Seconds a gpubench command took (it must succeed)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bench", *args], check=True)
    return time.perf_counter() - start


def runs(folder: Path) -> int:
    return sum(1 for _ in open(folder / "runs.jsonl"))


def grid_best(folder: Path) -> tuple[str, float]:
    """The grid's fastest configuration that a user can run, by its median images/s."""
    from bench.analyse.points import runnable

    points = runnable(pd.read_csv(folder / "points.csv"))
    best = points.loc[points.train_img_s.idxmax()]
    return f"{best.setting} b{best.batch}", float(best.train_img_s)


def tune_best(folder: Path) -> tuple[str, float]:
    path = pd.read_csv(folder / "tune.csv")
    best = path[path.best].iloc[0]
    knobs = " ".join(
        f"{k}={best[k]}"
        for k in ("pipeline", "batch", "workers", "use_multiprocessing", "max_queue_size", "cache", "transfer")
        if k in best and pd.notna(best[k])
    )
    return knobs, float(best.img_s)


def runs_to_reach(folder: Path, rate: float) -> int | None:
    """How many runs the tuner had made when a setting it measured first came within 5% of `rate`
    (the grid's best): its runs in order up to that setting's first point run; None if none did."""
    from bench.analyse.points import spec_of

    path = pd.read_csv(folder / "tune.csv")
    reached = path[path.img_s >= 0.95 * rate]
    if reached.empty:
        return None
    target = spec_of(reached.iloc[0].to_dict()).point_id
    rows = [json.loads(line) for line in open(folder / "runs.jsonl")]
    return next(i for i, r in enumerate(rows, 1) if r["point_id"] == target and r.get("role") == "point")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.tune_vs_grid")
    parser.add_argument("out", type=Path)
    parser.add_argument("--preset", default="quick", help="the grid swept, and tune's start (default: quick)")
    parser.add_argument("--grid", type=Path, help="a sweep of it already made (its wall time is then not known)")
    parser.add_argument("--set", action="append", default=[], help="passed to both, e.g. pipeline=keras")
    args = parser.parse_args(argv)
    sets = [a for s in args.set for a in ("--set", s)]
    grid, grid_s = args.grid, None
    if grid is None:
        grid = args.out / "grid"
        grid_s = gpubench("sweep", "--preset", args.preset, "--gpu", "cpu", "--out", str(grid), "--force", *sets)
    tune_s = gpubench("tune", "--preset", args.preset, "--gpu", "cpu", "--out", str(args.out / "tune"), *sets)
    (g_setting, g_rate), (t_setting, t_rate) = grid_best(grid), tune_best(args.out / "tune")
    found = {
        "grid": {"runs": runs(grid), "wall_s": grid_s, "best": g_setting, "img_s": g_rate},
        "tune": {"runs": runs(args.out / "tune"), "wall_s": tune_s, "best": t_setting, "img_s": t_rate},
        "ratio": t_rate / g_rate,
        "sets": args.set,
    }
    found["runs_ratio"] = found["tune"]["runs"] / found["grid"]["runs"]
    reach = runs_to_reach(args.out / "tune", g_rate)
    found["tune"]["runs_to_reach"] = reach
    found["reach_ratio"] = None if reach is None else reach / found["grid"]["runs"]
    print(json.dumps(found, indent=2))
    with open(args.out / "tune-vs-grid.jsonl", "a") as f:
        f.write(json.dumps(found) + "\n")
    return 0 if reach is not None and found["reach_ratio"] <= 1 / 3 else 1


if __name__ == "__main__":
    sys.exit(main())
