"""quick as it runs (a second repeat only where a verdict or the ranking depends on it) against the
full grid with every point repeated: `python -m tests.benchmarks.quick_vs_full OUT [--full FOLDER]
[--quick FOLDER]` (`make quick-vs-full`). Sweeps what is not given, prints each one's runs, wall time
and share of measured windows and every configuration's bound in both, appends them to
OUT/quick-vs-full.jsonl, and fails where a bound differs. The goal (issue 27): the same bounds in
6 minutes or less, 65% or more of it measured windows. A benchmark, not a test."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from tests.benchmarks.tune_vs_grid import gpubench


def summary(folder: Path, wall_s: float | None) -> dict:
    """Runs, wall time (None where the sweep was made before), the share of run time that was
    measured windows, and each configuration's bound ('' where withheld)."""
    from bench.analyse.points import read, runnable

    runs = pd.read_json(folder / "runs.jsonl", lines=True)
    points = runnable(read(folder))
    bounds = {f"{p.setting} b{p.batch}": (p.bound if not p.bound_doubt else "") for p in points.itertuples()}
    return {
        "folder": str(folder),
        "runs": len(runs),
        "wall_s": wall_s,
        "measured_share": float(runs.window_s.sum() / runs.wall_s.sum()),
        "bounds": bounds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.quick_vs_full")
    parser.add_argument("out", type=Path)
    parser.add_argument("--full", type=Path, help="a quick sweep with --repeat 2 already made")
    parser.add_argument("--quick", type=Path, help="a quick sweep already made")
    args = parser.parse_args(argv)
    found = {}
    for name, given, extra in (("quick", args.quick, []), ("full", args.full, ["--repeat", "2"])):
        folder = given or args.out / name
        wall = (
            None
            if given
            else gpubench("sweep", "--preset", "quick", "--gpu", "cpu", "--out", str(folder), "--force", *extra)
        )
        found[name] = summary(folder, wall)
    differ = {
        k: (v, found["full"]["bounds"].get(k))
        for k, v in found["quick"]["bounds"].items()
        if v != found["full"]["bounds"].get(k)
    }
    found["bounds_differ"] = differ
    print(json.dumps(found, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "quick-vs-full.jsonl", "a") as f:
        f.write(json.dumps(found) + "\n")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
