"""A results folder as one JSON document for other tools: its environment, sweep, points (the
same table as points.csv and the report) and runs."""

from __future__ import annotations

import json
from pathlib import Path

from bench.analyse.points import write_csv
from bench.results.store import read_json


def document(folder: Path) -> str:
    """The folder's environment, sweep, points and runs as one JSON text."""
    points, rows, _ = write_csv(folder)
    content = {name: read_json(folder / f"{name}.json") for name in ("env", "sweep")}
    content["points"] = json.loads(points.to_json(orient="records"))
    content["runs"] = rows
    return json.dumps(content, indent=1)
