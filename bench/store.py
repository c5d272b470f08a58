"""Append-only results of one sweep folder: runs.jsonl is the truth, runs.csv its mirror.

Every finished row is on disk before the next run starts, so a sweep killed at any moment
keeps every row it finished; a lock keeps two sweeps from writing one folder at once.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from bench.record import COLUMNS, SCHEMA


def read_json(path: Path) -> dict:
    """A results folder's JSON file (env.json, sweep.json), or {} when it is not there."""
    return json.loads(path.read_text()) if path.is_file() else {}


class StoreBusy(RuntimeError):
    """Another sweep holds the folder's lock."""


class ResultStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.jsonl = self.root / "runs.jsonl"
        self.csv = self.root / "runs.csv"
        self.samples = self.root / "samples"
        self.logs = self.root / "logs"

    def create(self) -> "ResultStore":
        for folder in (self.root, self.samples, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    @contextmanager
    def locked(self):
        """Held for a whole sweep; the kernel drops it if the sweep dies."""
        with open(self.root / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreBusy(f"another sweep is writing to {self.root}; wait for it or use --out") from None
            yield self

    def records(self) -> list[dict]:
        """Every row in the order written; a line cut short by a kill is skipped."""
        if not self.jsonl.is_file():
            return []
        rows = []
        for line in self.jsonl.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def latest(self) -> list[dict]:
        """The newest row of each run (a --force rerun replaces the older one)."""
        return list({row["run_id"]: row for row in self.records()}.values())

    def done(self) -> set[str]:
        """Runs measured by this version of the record: older rows are measured again."""
        return {row["run_id"] for row in self.records() if row.get("schema") == SCHEMA}

    def append(self, record: dict) -> None:
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._write_csv()

    def _write_csv(self) -> None:
        tmp = self.csv.with_suffix(".csv.tmp")
        pd.DataFrame(self.records(), columns=COLUMNS).to_csv(tmp, index=False)
        tmp.replace(self.csv)
