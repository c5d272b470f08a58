"""The report's section on profiled runs (--profile): for each, the operations that took most of
the device's time in its trace (profiles/<run_id>/top_ops.json, which the run wrote beside its
trace), with its point's bound from the runs that were not profiled."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def read_top_ops(root: Path) -> dict[str, dict]:
    """run_id -> its top_ops.json, for each profiled run of the results folder."""
    return {
        path.parent.name: json.loads(path.read_text()) for path in sorted(Path(root).glob("profiles/*/top_ops.json"))
    }


def section(root: Path, points: pd.DataFrame) -> list[str]:
    """Every profiled run's top operations (not only those whose bound is compute or overhead: a
    trace is taken only when asked for)."""
    profiled = read_top_ops(root)
    if not profiled:
        return []
    bounds = dict(zip(points.point_id, points.bound)) if "bound" in points else {}
    lines = [
        "## Where one step's time goes (profiled runs)",
        "",
        "A few steps of the measured window, traced by the backend's own profiler; the operations by "
        "self time on the device (on a CPU run, the host's threads, less their waits). Profiled runs' "
        "rates are left out of every table and verdict.",
        "",
    ]
    for run_id, found in profiled.items():
        bound = bounds.get(run_id.split("-")[0])
        where = f"; bound: {bound}" if isinstance(bound, str) and bound else ""
        table = pd.DataFrame(
            {
                "operation": [f"`{op['name']}`" for op in found["ops"]],
                "ms": [f"{op['ms']:.2f}" for op in found["ops"]],
                "share": [f"{op['share']:.0%}" for op in found["ops"]],
            }
        )
        lines += [
            f"Run `{run_id}` ({found['backend']}, {found['source']} time{where}); trace: "
            f"`profiles/{run_id}/{found['trace']}`",
            "",
            table.to_markdown(index=False, disable_numparse=True),
            "",
        ]
    return lines
