"""A results folder as one JSON document for other tools: its environment, sweep, points (the
same table as points.csv and the report) and runs."""

from __future__ import annotations

import json
from pathlib import Path

from bench import points as points_table
from bench.store import read_json


def to_json(folder: Path, out: str | Path | None = None) -> Path:
    points, rows, _ = points_table.write(folder)
    document = {name: read_json(folder / f"{name}.json") for name in ("env", "sweep")}
    document["points"] = json.loads(points.to_json(orient="records"))
    document["runs"] = rows
    path = Path(out or folder / "results.json")
    path.write_text(json.dumps(document, indent=1))
    return path
