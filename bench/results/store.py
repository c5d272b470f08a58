"""Append-only results of one sweep folder: runs.jsonl is the truth, runs.csv its mirror.

Every finished row is on disk before the next run starts, so a sweep killed at any moment
keeps every row it finished; a lock keeps two sweeps from writing one folder at once. Rows are
read in the current schema: older ones are upgraded step by step (bench/results/record.py).
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from bench.results.record import COLUMNS, SchemaError, upgrade


def read_json(path: Path) -> dict:
    """A results folder's JSON file (env.json, sweep.json), or {} when it is not there."""
    return json.loads(path.read_text()) if path.is_file() else {}


class StoreBusy(RuntimeError):
    """Another sweep holds the folder's lock."""


class StoreError(ValueError):
    """runs.jsonl cannot be read; the message is one line and names the line."""


STARTED = {"samples", "logs", ".lock", ".dataset.json"}  # what a sweep writes before env.json


def foreign_files(folder: Path) -> list[str]:
    """The names in `folder` that gpubench did not write: none in a folder that does not exist,
    or that holds gpubench's env.json or runs.jsonl, or only what a sweep writes before them."""
    if not folder.is_dir() or (folder / "env.json").is_file() or (folder / "runs.jsonl").is_file():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name not in STARTED)


MEASURED_BY = ("machine", "commit")  # the identity columns that say which machine and code measured a row


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
        """Every row in the order written, in the current schema. A last line cut short by a
        kill is skipped; any other line that is not a row is an error that names it."""
        if not self.jsonl.is_file():
            return []
        text = self.jsonl.read_text()
        lines = text.split("\n")
        env = read_json(self.root / "env.json")
        rows = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):  # no newline after it: the write was cut short
                    continue
                raise StoreError(f"{self.jsonl}, line {number}, is not a run record: mend or delete that line")
            try:
                rows.append(upgrade(row, env))
            except SchemaError as e:
                raise StoreError(f"{self.jsonl}, line {number}: {e}") from None
        return rows

    def latest(self, identity: dict | None = None) -> list[dict]:
        """The newest row of each run (a --force rerun replaces the older one); with `identity`,
        of the runs that machine and code measured."""
        rows = self.records()
        if identity:
            rows = [r for r in rows if all(r.get(k) == v for k, v in identity.items() if k in MEASURED_BY)]
        return list({row["run_id"]: row for row in rows}.values())

    def done(self, identity: dict | None = None) -> set[str]:
        """The runs already measured (by that machine and code, with `identity`)."""
        return {row["run_id"] for row in self.latest(identity)}

    def append(self, record: dict) -> None:
        self._drop_cut_line()
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._write_csv()

    def _drop_cut_line(self) -> None:
        """A row cut short by a kill (no newline after it) is lost: drop it before appending,
        so that the next row starts a line of its own."""
        if not self.jsonl.is_file():
            return
        data = self.jsonl.read_bytes()
        if data and not data.endswith(b"\n"):
            self.jsonl.write_bytes(data[: data.rfind(b"\n") + 1])

    def _write_csv(self) -> None:
        tmp = self.csv.with_suffix(".csv.tmp")
        pd.DataFrame(self.records(), columns=COLUMNS).to_csv(tmp, index=False)
        tmp.replace(self.csv)
