"""What a user can ask for, as tables: the presets (their runs and, where this host has run
them, about how long they take) and the knobs (generated from the knob metadata in spec)."""

from __future__ import annotations

import socket
import statistics
import textwrap
from pathlib import Path

from bench.plan.grid import build_grid, ceiling_probes
from bench.plan.knobs import KNOBS, SpecError
from bench.plan.presets import PRESET_DIR, load_preset
from bench.results.store import ResultStore, StoreError, read_json


def seconds_per_run(results: Path, preset: str, host: str) -> float | None:
    """The median wall time of the runs of `preset` this host measured in any results folder
    under `results` (a folder whose sweep.json names the preset), or None where there are none."""
    walls = []
    for meta in results.glob("**/sweep.json"):
        if read_json(meta).get("preset") != preset:
            continue
        try:
            rows = ResultStore(meta.parent).latest()
        except StoreError:
            continue
        walls += [r["wall_s"] for r in rows if r.get("host") == host and r.get("wall_s")]
    return statistics.median(walls) if walls else None


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"about {minutes:.0f} min" if minutes >= 1.5 else f"about {seconds:.0f} s"


def presets(results: Path = Path("results"), host: str | None = None) -> str:
    """One row per preset: name, runs (with the ceilings it measures), the estimated time on
    this host where its runs are recorded under `results`, and its description's first clause
    (`gpubench sweep --preset NAME --dry-run` shows the rest of the plan)."""
    host = host or socket.gethostname()
    rows = []
    for path in sorted(PRESET_DIR.glob("*.toml")):
        preset = load_preset(str(path))
        try:
            grid, _ = build_grid(preset.knob_sets(), [], preset.repeat, preset.installed_only)
            runs = len(grid) + (len(ceiling_probes(grid)) if preset.ceilings else 0)
            count = str(runs)
        except SpecError as e:  # e.g. a backend this machine lacks
            runs, count = 0, f"cannot run here: {e}"
        per_run = seconds_per_run(results, preset.name, host) if runs else None
        first = preset.description.split(". ")[0].split(": ")[0].rstrip(".")
        rows.append(
            [
                preset.name,
                count,
                _duration(per_run * runs) if per_run else "",
                textwrap.shorten(first, 90, placeholder=" ..."),
            ]
        )
    return _markdown(["preset", "runs", f"time on {host}", "description"], rows)


def knobs() -> str:
    """One row per knob: name, default, allowed values or range, meaning."""
    rows = []
    for name, field in KNOBS.items():
        meta = field.metadata
        if meta["allowed"]:
            allowed = ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in meta["allowed"])
        elif meta["minimum"] is not None:
            allowed = f"a whole number, {meta['minimum']} or more"
        else:
            allowed = "package.module:function"
        default = str(field.default).lower() if isinstance(field.default, bool) else str(field.default)
        rows.append([name, default, allowed, meta["help"]])
    return _markdown(["knob", "default", "allowed", "meaning"], rows)


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=header, tablefmt="github")
