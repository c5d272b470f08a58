"""Append-only results of one sweep folder: runs.jsonl is the truth, runs.csv its mirror.

Every finished row is on disk before the next run starts, so a sweep killed at any moment
keeps every row it finished; a lock keeps two sweeps from writing one folder at once. An append
adds one line to each file and reads neither back, so a sweep's last row costs what its first
did. Rows are read in the current schema: older ones are upgraded step by step
(bench/results/record.py); a runs.csv of other columns is rewritten once, at the next append.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
from contextlib import contextmanager
from pathlib import Path

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
    """One results folder: its rows (runs.jsonl, mirrored in runs.csv), samples and logs."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.jsonl = self.root / "runs.jsonl"
        self.csv = self.root / "runs.csv"
        self.samples = self.root / "samples"
        self.logs = self.root / "logs"
        self._ends: tuple[int, int] | None = None  # both files' sizes after this store's last append

    def create(self) -> ResultStore:
        """The folder and its samples/ and logs/, made when missing."""
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
        with open(self.jsonl) as f:
            lines = f.read().split("\n")
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
                raise StoreError(
                    f"{self.jsonl}, line {number}, is not a run record: mend or delete that line"
                ) from None
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
        """One line at the end of runs.jsonl (on disk before this returns) and one row at the end
        of runs.csv. Both files are checked once per store, or again when someone else changed
        them since its last append; after that an append reads nothing."""
        checked = self._ends is not None and self._ends == (_size(self.jsonl), _size(self.csv))
        if not checked:
            self._drop_cut_line()
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if checked or self._csv_mirrors_all_but_the_last():
            with open(self.csv, "a", newline="") as f:
                f.write(csv_lines([upgrade(record, {})], header=_size(self.csv) == 0))
        else:
            self._rewrite_csv()
        self._ends = (_size(self.jsonl), _size(self.csv))

    def _drop_cut_line(self) -> None:
        """A row cut short by a kill (no newline after it) is lost: drop it before appending,
        so that the next row starts a line of its own. Reads the last byte, and the cut line
        only when there is one."""
        size = _size(self.jsonl)
        if not size:
            return
        with open(self.jsonl, "rb+") as f:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            start = size
            while start > 0:  # back to the newline before the cut line, a block at a time
                step = min(start, 1 << 16)
                f.seek(start - step)
                newline = f.read(step).rfind(b"\n")
                if newline >= 0:
                    start = start - step + newline + 1
                    break
                start -= step
            f.truncate(start)

    def _csv_mirrors_all_but_the_last(self) -> bool:
        """runs.csv has RunRecord's columns and every row of runs.jsonl before the one just
        appended (read once per store: a folder from an older gpubench, or a crash between the
        two appends, fails it)."""
        if not _size(self.csv):
            return self._jsonl_lines() == 1
        with open(self.csv, newline="") as f:
            rows = csv.reader(f)
            if next(rows, None) != COLUMNS:
                return False
            return sum(1 for _ in rows) == self._jsonl_lines() - 1

    def _jsonl_lines(self) -> int:
        with open(self.jsonl) as f:
            return sum(1 for line in f if line.strip())

    def _rewrite_csv(self) -> None:
        """runs.csv anew from every row of runs.jsonl, in RunRecord's columns, replaced whole."""
        tmp = self.csv.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            f.write(csv_lines(self.records(), header=True))
        tmp.replace(self.csv)


def _size(path: Path) -> int:
    """Bytes in `path`: 0 when it is not there."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def csv_lines(rows: list[dict], header: bool) -> str:
    """`rows` as runs.csv's lines in RunRecord's columns (None empty), the header first with `header`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(COLUMNS)
    writer.writerows([row.get(c) for c in COLUMNS] for row in rows)
    return out.getvalue()
