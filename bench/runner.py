"""The parent side of a sweep: one fresh worker process per point, a timeout, and a row
for every point whatever becomes of its process."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bench.record import RunRecord
from bench.devices import TF_NCHW_ON_CPU, TORCH_ONE_DEVICE
from bench.spec import KNOBS, SAMPLE_INTERVAL_S, RunSpec, installed, knobs_of
from bench.store import ResultStore
from bench.worker import OOM_RE
from pipelines import split_plan
from pipelines.dataset import DatasetIndex


DALI_TF_PLUGIN = "nvidia.dali_tf_plugin"
DALI_NEEDS_TF_PLUGIN = ("DALI feeds TensorFlow through its TF plugin, which is not installed here "
                        "(pip install --no-build-isolation nvidia-dali-tf-plugin-cuda130: it compiles against "
                        "the installed TensorFlow)")
LADDER_KNOBS = knobs_of("model", "schedule", "device")  # what a point's device memory depends on, but its batch


def _kill_group(pid: int) -> None:
    """The worker and any loader processes it left behind."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _log_lines(path: Path) -> list[str]:
    return [l for l in path.read_text(errors="replace").splitlines() if l.strip()] if path.is_file() else []


def _memory_cap(mb: int | None):
    """A pre-exec hook capping the worker's address space: on a CPU machine it makes an
    out-of-memory search testable; allocations past it fail as they would on a full device."""
    if not mb:
        return None

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (mb * 2**20, mb * 2**20))

    return cap


def run_point(spec: RunSpec, index_path: Path, store: ResultStore, timeout_s: float,
              interval: float = SAMPLE_INTERVAL_S, mem_limit_mb: int | None = None) -> dict:
    """Run one point in a fresh process and return its record as a dict."""
    record_path = store.root / f".{spec.run_id}.json"
    record_path.unlink(missing_ok=True)
    log_path = store.logs / f"{spec.run_id}.log"
    cmd = [sys.executable, "-m", "bench.worker", "--spec", json.dumps(dataclasses.asdict(spec)),
           "--index", str(index_path), "--record", str(record_path),
           "--samples", str(store.samples / f"{spec.run_id}.csv"), "--interval", str(interval)]
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_memory_cap(mem_limit_mb))
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:  # also on Ctrl-C: never leave a run training behind
            _kill_group(proc.pid)
            proc.wait()
    wall_s = time.perf_counter() - start
    if returncode is None:
        return RunRecord.for_spec(spec, status="timeout", wall_s=wall_s,
                                  error=f"no result within the {timeout_s:g} s timeout").to_dict()
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        record_path.unlink()
        return record
    lines = _log_lines(log_path)
    said_oom = next((l for l in reversed(lines) if OOM_RE.search(l)), None)
    if returncode == -signal.SIGKILL:
        status, why = "oom", "worker killed by SIGKILL (most often the kernel's out-of-memory killer)"
    elif said_oom:
        cap = f" under the {mem_limit_mb} MB memory cap" if mem_limit_mb else ""
        status, why = "oom", f"worker died ({returncode}) out of memory{cap}: {said_oom.strip()[:300]}"
    elif mem_limit_mb and returncode < 0:  # under a cap, an allocation (a buffer, a thread's stack) failed
        status, why = "oom", f"worker killed by signal {-returncode} under the {mem_limit_mb} MB memory cap"
    else:
        status, why = "error", f"worker exited with status {returncode} without a record"
    tail = lines[-1][:300] if lines and not said_oom else ""
    return RunRecord.for_spec(spec, status=status, wall_s=wall_s,
                              error=f"{why}; last log line: {tail}" if tail else why).to_dict()


def measure_peaks(settings: set[tuple[str, str]], timeout_s: float = 300) -> dict:
    """sweep.json's peak entries, each (backend, precision) probed in a fresh process:
    `peak_tflops` (backend -> precision -> TFLOP/s, None where the probe failed),
    `peak_matmul_precision` (the arithmetic it ran in) and `peak_errors` (why a probe failed)."""
    found = {"peak_tflops": {}, "peak_matmul_precision": {}, "peak_errors": {}}
    for backend, precision in sorted(settings):
        probe, why = {}, None
        try:
            out = subprocess.run([sys.executable, "-m", "bench.peak", precision, backend], capture_output=True,
                                 text=True, timeout=timeout_s)
            if out.returncode == 0:
                probe = json.loads(out.stdout.strip().splitlines()[-1])
            else:
                why = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1][:300]
        except subprocess.TimeoutExpired:
            why = f"no result within {timeout_s:g} s"
        except (IndexError, json.JSONDecodeError):
            why = "the probe printed no result"
        found["peak_tflops"].setdefault(backend, {})[precision] = probe.get("tflops")
        found["peak_matmul_precision"].setdefault(backend, {})[precision] = probe.get("matmul_precision")
        if why:
            found["peak_errors"].setdefault(backend, {})[precision] = why
    return found


def _why_skipped(spec: RunSpec, gpus_present: int, index) -> str | None:
    """Why a point cannot run here, known before starting it."""
    if gpus_present and spec.gpus > gpus_present:
        return f"needs {spec.gpus} GPUs, {gpus_present} present"
    if spec.gpus > 1 and spec.backend == "torch":
        return TORCH_ONE_DEVICE
    if spec.data_format == "channels_first" and spec.backend == "tensorflow" and not gpus_present:
        return TF_NCHW_ON_CPU
    if spec.pipeline == "dali" and spec.backend == "tensorflow" and not installed(DALI_TF_PLUGIN):
        return DALI_NEEDS_TF_PLUGIN
    if spec.gpus > 1:
        for split in ("train", "val"):
            steps, images = split_plan(index, spec, split)
            last = images - (steps - 1) * spec.batch
            if spec.batch % spec.gpus or last % spec.gpus:
                return (f"batch {spec.batch} ({split} ends with {last}) does not split evenly over {spec.gpus} "
                        f"devices: data parallelism gives each an equal share")
    return None


class BatchLadders:
    """The smallest batch that ran out of memory on each ladder: the knobs a point's device
    memory depends on besides its batch (not its loader's). A larger batch on the same ladder
    would run out too, so it is skipped rather than run."""

    def __init__(self, rows=()):
        self.oom: dict[tuple, int] = {}
        for row in rows:
            self.note(row)

    @staticmethod
    def key(knobs: dict) -> tuple:
        return tuple(knobs.get(k, KNOBS[k].default) for k in LADDER_KNOBS)

    def note(self, row: dict) -> None:
        if row["status"] == "oom":
            key = self.key(row)
            self.oom[key] = min(row["batch"], self.oom.get(key, row["batch"]))

    def stopped(self, spec: RunSpec) -> str | None:
        smallest = self.oom.get(self.key(spec.knobs()))
        if smallest is not None and spec.batch >= smallest:
            return f"batch ladder stopped: batch {smallest} ran out of memory with this model and precision"
        return None


def _summary(record: dict) -> str:
    if record["status"] != "ok":
        return f"[red]{record['status']}[/red] {record['error'][:160]}"
    return f"ok {record['total_s']:.1f} s, {record['train_img_s']:.1f} img/s"


def sweep(specs: list[RunSpec], index_path: Path, store: ResultStore, timeout_s: float,
          interval: float = SAMPLE_INTERVAL_S, force: bool = False, gpus_present: int = 0,
          identity: dict | None = None, on_row=None, console: Console | None = None) -> list[dict]:
    """Run the points this machine and code (`identity`: the columns bench.env.identity gives)
    have not yet measured in the store (all with `force`); after each, append its row, stamped
    with `identity`, and hand it to `on_row`. A point asking for more GPUs than are present (with
    no GPU at all, gpus=N trains on N logical CPU devices), or for a batch at least as large as one
    that ran out of memory on its ladder, is a `skipped` row. Returns the new rows."""
    console = console or Console(stderr=True)
    identity = identity or {}
    index = DatasetIndex.load(index_path) if Path(index_path).is_file() else None
    done = set() if force else store.done(identity)
    todo = [s for s in specs if s.run_id not in done]
    if len(todo) < len(specs):
        console.print(f"{len(specs) - len(todo)} of {len(specs)} runs already in {store.root}: skipped (--force reruns them)")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    ladders = BatchLadders([] if force else store.latest(identity))
    new = []
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("sweep", total=len(todo))
        for i, spec in enumerate(todo, 1):
            progress.update(task, description=spec.label())
            why = _why_skipped(spec, gpus_present, index) or ladders.stopped(spec)
            if why:
                record = RunRecord.for_spec(spec, status="skipped", error=why).to_dict()
            else:
                record = run_point(spec, index_path, store, timeout_s, interval)
            record.update(identity)
            store.append(record)
            ladders.note(record)
            if on_row:
                on_row(record)
            new.append(record)
            role = ", ceiling" if spec.role == "ceiling" else ""
            progress.console.print(f"[{i}/{len(todo)}] {spec.label()} (r{spec.repeat}{role}): {_summary(record)}")
            progress.advance(task)
    return new
