"""Results that stay trustworthy: rows read in the current schema (older ones upgraded), a
corrupt line named, a folder kept to one machine and commit, every row stamped with them."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.analyse import points
from bench.plan.knobs import RunSpec
from bench.results.machine import collect, fingerprint_id, identity
from bench.results.record import COLUMNS, SCHEMA, RunRecord
from bench.results.store import ResultStore, StoreError
from tests.conftest import SPAWNED

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "cpu"


def test_a_committed_folder_of_the_current_schema_reads_as_written():
    store = ResultStore(REFERENCE / "ci")
    raw = [json.loads(line) for line in store.jsonl.read_text().splitlines()]
    rows = store.records()
    assert len(rows) == len(raw) == 12 and {r["schema"] for r in raw} == {SCHEMA}
    assert all(row == {**RunRecord().to_dict(), **line} for row, line in zip(rows, raw))


def test_a_misspelt_column_is_an_error_where_it_is_set():
    """A typo raises instead of vanishing from the stored row: by attribute, in a constructor and
    through fill (how the worker sets a summary's figures); the row is left as it was."""
    record = RunRecord()
    with pytest.raises(AttributeError):
        record.trian_img_s = 5.0
    with pytest.raises(TypeError):
        RunRecord(trian_img_s=5.0)
    with pytest.raises(AttributeError, match="trian_img_s"):
        record.fill({"train_img_s": 5.0, "trian_img_s": 5.0})
    assert record.train_img_s is None
    record.fill({"train_img_s": 5.0})
    assert record.to_dict() == {**RunRecord().to_dict(), "train_img_s": 5.0} and "trian_img_s" not in COLUMNS


def test_a_committed_schema_1_folder_is_upgraded_step_by_step():
    """Schema 1 (results/reference/cpu/loaders) timed the epochs as asked and took its sampler
    summaries over the whole run: they become run_*, the window's stay empty, and the ids follow
    the knobs (window=epochs)."""
    store = ResultStore(REFERENCE / "loaders")
    raw = [json.loads(line) for line in store.jsonl.read_text().splitlines()]
    rows = store.records()
    assert {r["schema"] for r in raw} == {1} and {r["schema"] for r in rows} == {SCHEMA}
    for old, new in zip(raw, rows):
        assert new["window"] == "epochs" and new["data_format"] == "channels_last"
        assert new["run_cpu_util_mean"] == old["cpu_util_mean"] and new["cpu_util_mean"] is None
        assert new["train_img_s"] == old["train_img_s"] and new["matmul_precision"] == "float32"
        spec = RunSpec(**{k: new[k] for k in RunSpec.__dataclass_fields__ if k in new})
        assert new["point_id"] == spec.point_id != old["point_id"]
    table = points.table(rows, {}, {})
    assert len(table) == 18 and (table.repeats_ok == 3).all()


def rows_file(tmp_path, lines: list[str]) -> ResultStore:
    store = ResultStore(tmp_path / "out").create()
    store.jsonl.write_text("".join(lines))
    return store


def record_line(batch: int, **fields) -> str:
    return json.dumps(RunRecord.for_spec(RunSpec(backbone="tiny", batch=batch), status="ok", **fields).to_dict())


def test_a_row_cut_short_by_a_kill_is_dropped_and_a_corrupt_one_is_named(tmp_path):
    store = rows_file(tmp_path, [record_line(4) + "\n", record_line(8)[:40]])
    assert [r["batch"] for r in store.records()] == [4]
    store.append(json.loads(record_line(16)))  # the cut row is dropped, the new one starts its own line
    assert [r["batch"] for r in store.records()] == [4, 16]
    broken = rows_file(tmp_path, [record_line(4) + "\n", "{not json\n", record_line(8) + "\n"])
    with pytest.raises(StoreError, match=r"runs.jsonl, line 2, is not a run record"):
        broken.records()
    newer = rows_file(tmp_path, [record_line(4, schema=SCHEMA + 1) + "\n"])
    with pytest.raises(StoreError, match=rf"line 1: written by a newer gpubench \(schema {SCHEMA + 1}"):
        newer.records()


def test_a_folder_of_another_machine_is_refused_and_forced_runs_keep_its_rows_apart(tiny_tree, stand_in, cli):
    args = ["sweep", "--preset", "smoke", "--data", tiny_tree, "--out", "out", "--no-ceilings"]
    args += ["--set", "pipeline=synthetic", "--set", "batch=4"]
    stand_in.fails = lambda spec: ("timeout", "no result within the 0.5 s timeout")  # cheap rows to keep apart
    first = cli(*args)
    assert first.returncode == 1 and "timeout" in first.stderr, first.stderr[-2000:]
    out = Path("out")
    row = ResultStore(out).records()[0]
    env = collect()
    assert {k: row[k] for k in ("gpubench", "commit", "machine", "host")} == identity(env)
    other = {**json.loads((out / "env.json").read_text()), "cpu": "Another CPU", "cpu_threads": 64}
    (out / "env.json").write_text(json.dumps(other))
    stand_in.started.clear()
    refused = cli(*args)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1 and stand_in.started == []
    assert "holds the runs of another machine (cpu Another CPU vs" in refused.stderr and "--force" in refused.stderr
    theirs = record_line(8, machine=fingerprint_id(other), commit=row["commit"])  # a point only it measured
    (out / "runs.jsonl").write_text(theirs + "\n")
    forced = cli(*args, "--force")
    assert forced.returncode == 1 and "timeout" in forced.stderr, forced.stderr[-2000:]
    assert len(ResultStore(out).records()) == 2
    kept, left_out = points.current_rows(out)
    assert len(kept) == 1 and kept[0]["machine"] == identity(env)["machine"] and left_out == 1
    assert "1 runs of another machine or commit are kept in runs.jsonl and left out" in (out / "report.md").read_text()


@pytest.mark.slow
def test_the_sweep_process_imports_no_framework(tmp_path, tiny_tree):
    """Only workers import TensorFlow, JAX or torch: the sweep prints none of their start-up lines
    and refuses bad input in well under a second. Its one run times out (exit 1): no framework
    needed a loaded machine's seconds to start. Nor does it import scipy.stats (0.7 s of CPU)."""
    code = (
        "import sys; from bench import cli; status = cli.main(['sweep', '--preset', 'smoke', '--data', "
        "sys.argv[1], '--out', 'out', '--timeout', '0.5', '--no-ceilings', '--set', 'pipeline=synthetic', "
        "'--set', 'batch=4']); "
        "print(status, [m for m in ('tensorflow', 'keras', 'jax', 'torch', 'scipy.stats') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tiny_tree)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=SPAWNED,
    )
    assert out.stdout.split()[-2:] == ["1", "[]"], out.stderr[-2000:]


class CountedFile:
    """A file whose reads and writes add their lengths to `counts`: what an append costs, in
    characters moved, whatever the machine's speed."""

    def __init__(self, file, counts: dict):
        self._file, self._counts = file, counts

    def _add(self, key: str, data):
        self._counts[key] += len(data)
        return data

    def read(self, *args):
        return self._add("read", self._file.read(*args))

    def readline(self, *args):
        return self._add("read", self._file.readline(*args))

    def readlines(self, *args):
        return [self._add("read", line) for line in self._file.readlines(*args)]

    def __iter__(self):
        return self

    def __next__(self):
        return self._add("read", next(self._file))

    def write(self, data):
        self._add("written", data)
        return self._file.write(data)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()

    def __getattr__(self, name):
        return getattr(self._file, name)


ROWS = 2000


def test_the_2000th_append_reads_and_writes_no_more_than_the_first(tmp_path, monkeypatch):
    """Append-only: each append adds a line to runs.jsonl and a row to runs.csv and reads neither
    back, so a long sweep costs the same per row at its end as at its start."""
    import builtins
    import io

    store = ResultStore(tmp_path / "out").create()
    record = RunRecord.for_spec(RunSpec(backbone="tiny", batch=8), status="ok", train_img_s=12.5).to_dict()
    counts = {"read": 0, "written": 0}
    real_open = io.open

    def counted_open(*args, **kwargs):
        return CountedFile(real_open(*args, **kwargs), counts)

    monkeypatch.setattr(builtins, "open", counted_open)
    monkeypatch.setattr(io, "open", counted_open)
    monkeypatch.setattr("os.fsync", lambda fd: None)  # on disk or not, the bytes are the same
    costs = []
    for _ in range(ROWS):
        before = dict(counts)
        store.append(record)
        costs.append({k: counts[k] - before[k] for k in counts})
    monkeypatch.undo()
    first, second, last = costs[0], costs[1], costs[-1]
    assert last == second and last["read"] <= first["read"] and last["written"] <= first["written"]
    assert last["read"] == 0 and last["written"] == second["written"] > 0
    assert len(store.records()) == ROWS
    every = pd.read_csv(store.csv)
    assert list(every.columns) == COLUMNS and len(every) == ROWS and (every.train_img_s == 12.5).all()


def test_a_runs_csv_of_other_columns_or_rows_is_rewritten_once_then_appended_to(tmp_path):
    """A folder of an older gpubench (other columns), or one whose runs.csv lost rows, gets its
    mirror rewritten whole at the first append; the next appends only add rows."""
    store = rows_file(tmp_path, [record_line(4) + "\n", record_line(8) + "\n"])
    store.csv.write_text("schema,run_id,batch\n2,old,4\n")
    store.append(json.loads(record_line(16)))
    every = pd.read_csv(store.csv)
    assert list(every.columns) == COLUMNS and list(every.batch) == [4, 8, 16]
    rewritten = store.csv.stat().st_ino
    store.append(json.loads(record_line(32)))
    assert store.csv.stat().st_ino == rewritten and list(pd.read_csv(store.csv).batch) == [4, 8, 16, 32]
    short = rows_file(tmp_path, [record_line(4) + "\n", record_line(8) + "\n"])
    short.csv.unlink()
    short.append(json.loads(record_line(16)))
    assert list(pd.read_csv(short.csv).batch) == [4, 8, 16]


def test_a_folder_of_the_same_head_with_other_changes_says_which_is_dirty():
    """The store's refusal and the report's header both keep the "-dirty" of uncommitted code."""
    from bench.output.header import machine
    from bench.results.machine import differs

    env = {"cpu": "Test CPU", "commit": "a" * 40}
    said = differs(env, {**env, "commit": "a" * 40 + "-dirty"})
    assert said == f"another commit ({'a' * 12} vs {'a' * 12}-dirty)"
    assert any(f"(commit {'a' * 12}-dirty)" in line for line in machine({**env, "commit": "a" * 40 + "-dirty"}))
