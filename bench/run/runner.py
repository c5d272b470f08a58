"""The parent side of a sweep: one fresh worker process per point, a timeout, and a row
for every point whatever becomes of its process."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.markup import escape
from rich.text import Text

from bench.results.record import RunRecord
from bench.run.devices import TF_MULTI_WORKER, TF_NCHW_ON_CPU, TORCH_ONE_DEVICE, torch_multi_host
from bench.results.machine import this_machine
from bench.plan.knobs import KNOBS, SAMPLE_INTERVAL_S, RunSpec, knobs_of
from bench.plan.grid import installed
from bench.results.store import ResultStore
from bench.run.worker import OOM_RE
from pipelines import split_plan
from pipelines.dataset import DatasetIndex


DALI_TF_PLUGIN = "nvidia.dali_tf_plugin"
DALI_NEEDS_TF_PLUGIN = ("DALI feeds TensorFlow through its TF plugin, which is not installed here "
                        "(pip install --no-build-isolation nvidia-dali-tf-plugin-cuda130: it compiles against "
                        "the installed TensorFlow)")
LADDER_KNOBS = knobs_of("model", "schedule", "device")  # what a point's device memory depends on, but its batch


class Interrupted(Exception):
    """Ctrl-C during a sweep: the rows finished are kept; the message says where, and how to go on."""


def clock(seconds: float) -> str:
    """1:02:03, 2:03 or 0:05: a duration as a clock reads."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def eta(elapsed_s: float, ran: int, left: int) -> float | None:
    """Seconds the `left` runs will take at the pace so far: `elapsed_s` over the `ran` runs that
    ran (a skipped one takes no time and is not counted), or None before the first has ended."""
    return elapsed_s / ran * left if ran else None


class EtaColumn(ProgressColumn):
    """The time left, from the runs done (rich's own estimate needs a finish within its last 30 s)."""

    def render(self, task) -> Text:
        left = eta(task.elapsed or 0.0, task.fields["ran"], task.total - task.completed)
        return Text("ETA " + ("-:--" if left is None else clock(left)), style="progress.remaining")


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def _host_env(hosts: int) -> list[dict]:
    """Each process's environment: with hosts > 1, Keras's multi-process variables, the
    coordinator on a free localhost port."""
    if hosts == 1:
        return [dict(os.environ)]
    address = f"localhost:{_free_port()}"
    return [dict(os.environ, KERAS_DISTRIBUTION_JOB_ADDRESSES=address, KERAS_DISTRIBUTION_NUM_PROCESSES=str(hosts),
                 KERAS_DISTRIBUTION_PROCESS_ID=str(k)) for k in range(hosts)]


def run_point(spec: RunSpec, index_path: Path, store: ResultStore, timeout_s: float,
              interval: float = SAMPLE_INTERVAL_S, mem_limit_mb: int | None = None) -> dict:
    """Run one point in fresh processes and return its record, stamped with this machine."""
    return {**_run(spec, index_path, store, timeout_s, interval, mem_limit_mb), **this_machine()}


def _run(spec: RunSpec, index_path: Path, store: ResultStore, timeout_s: float, interval: float,
         mem_limit_mb: int | None) -> dict:
    """One process, or one per host when hosts > 1 (joined on a localhost port); the record of
    process 0, with every process's samples in one file (a `host` column). A process that fails,
    or the timeout, ends them all: one row."""
    hosts = spec.hosts
    part = [""] + [f".p{k}" for k in range(1, hosts)]  # process k's files; process 0's are the run's own
    records = [store.root / f".{spec.run_id}{part[k]}.json" for k in range(hosts)]
    samples = [store.samples / f"{'.' if k else ''}{spec.run_id}{part[k]}.csv" for k in range(hosts)]
    logs = [store.logs / f"{spec.run_id}{part[k]}.log" for k in range(hosts)]
    for path in records:
        path.unlink(missing_ok=True)
    start, procs, returncodes = time.perf_counter(), [], [None] * hosts
    try:
        for k, env in enumerate(_host_env(hosts)):
            cmd = [sys.executable, "-m", "bench.run.worker", "--spec", json.dumps(dataclasses.asdict(spec)),
                   "--index", str(index_path), "--record", str(records[k]), "--samples", str(samples[k]),
                   "--interval", str(interval), "--process-id", str(k)]
            with open(logs[k], "w") as log:
                procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                              preexec_fn=_memory_cap(mem_limit_mb), env=env))
        while time.perf_counter() - start < timeout_s:
            returncodes = [proc.poll() for proc in procs]
            if all(code is not None for code in returncodes) or any(code for code in returncodes):
                break  # all done, or one failed: the others may wait on it for ever
            time.sleep(0.1)
    finally:  # also on Ctrl-C: never leave a run training behind
        for proc in procs:
            _kill_group(proc.pid)
            proc.wait()
    wall_s = time.perf_counter() - start
    if None in returncodes and not any(returncodes):  # none failed, not all done: out of time
        return RunRecord.for_spec(spec, status="timeout", wall_s=wall_s,
                                  error=f"no result within the {timeout_s:g} s timeout").to_dict()
    written = [json.loads(path.read_text()) if path.is_file() else None for path in records]
    for path in records:
        path.unlink(missing_ok=True)
    if hosts > 1:
        _merge_samples(samples)
    failed = next((k for k, code in enumerate(returncodes) if code), None)
    if failed is None or (written[failed] and written[failed]["status"] != "ok"):
        record = written[0] if failed is None else written[failed]
        if record is not None:
            if hosts > 1 and failed is None:
                losses = {r["final_loss"] for r in written}
                record["hosts_agree"] = len(losses) == 1
                record.update(every_host_energy(written))
            elif hosts > 1:
                record["error"] = f"process {failed} of {hosts}: {record['error']}"
            return record
    return _died(spec, returncodes[failed or 0], logs[failed or 0], mem_limit_mb, wall_s,
                 f"process {failed} of {hosts}: " if hosts > 1 else "")


def every_host_energy(records: list[dict]) -> dict:
    """The energy figures of a run over several processes: each process's record holds the
    energy of the GPUs it sampled, process 0's the whole run's images, so the run's images per
    joule is those images over every process's energy (None where one process had no counter)."""
    out = {}
    for key in ("gpu_energy_j", "run_gpu_energy_j"):
        values = [r.get(key) for r in records]
        out[key] = None if any(v is None for v in values) else float(sum(values))
    images = records[0].get("window_images")
    out["img_per_joule"] = images / out["gpu_energy_j"] if images and out["gpu_energy_j"] else None
    return out


def _merge_samples(paths: list[Path]) -> None:
    """Every process's samples in the run's file, with a `host` column (the process number)."""
    import pandas as pd

    parts = [pd.read_csv(path).assign(host=k) for k, path in enumerate(paths) if path.is_file()]
    if parts:
        pd.concat(parts, ignore_index=True).to_csv(paths[0], index=False)
    for path in paths[1:]:
        path.unlink(missing_ok=True)


def _died(spec: RunSpec, returncode: int, log_path: Path, mem_limit_mb: int | None, wall_s: float,
          who: str) -> dict:
    """The row of a worker that ended without a record: what its exit and its log say."""
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
                              error=who + (f"{why}; last log line: {tail}" if tail else why)).to_dict()


def measure_peaks(settings: set[tuple[str, str]], timeout_s: float = 300) -> dict:
    """sweep.json's peak entries, each (backend, precision) probed in a fresh process:
    `peak_tflops` (backend -> precision -> TFLOP/s, None where the probe failed),
    `peak_matmul_precision` (the arithmetic it ran in) and `peak_errors` (why a probe failed)."""
    found = {"peak_tflops": {}, "peak_matmul_precision": {}, "peak_errors": {}}
    for backend, precision in sorted(settings):
        probe, why = {}, None
        try:
            out = subprocess.run([sys.executable, "-m", "bench.run.peak", precision, backend], capture_output=True,
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
    if spec.hosts > 1:
        if spec.backend == "tensorflow":
            return TF_MULTI_WORKER
        if spec.backend == "torch" and (why := torch_multi_host()):
            return why
        if spec.batch % (spec.hosts * spec.gpus):
            return (f"batch {spec.batch} does not split evenly over {spec.hosts} hosts of {spec.gpus} device(s): "
                    f"each host feeds an equal share of every batch")
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
    """A run's console line: a skip's reason whole, an error's first 300 characters cut at a word."""
    if record["status"] == "skipped":
        return f"skipped: {escape(record['error'])}"
    if record["status"] != "ok":
        return f"[red]{record['status']}[/red] {escape(textwrap.shorten(record['error'], 300, placeholder=' ...'))}"
    return f"ok {record['total_s']:.1f} s, {record['train_img_s']:.1f} img/s"


def sweep(specs: list[RunSpec], index_path: Path, store: ResultStore, timeout_s: float,
          interval: float = SAMPLE_INTERVAL_S, force: bool = False, gpus_present: int = 0,
          identity: dict | None = None, on_row=None, console: Console | None = None, jobs=None) -> list[dict]:
    """Run the points this code (and on this machine, unless `jobs` run them elsewhere; `identity`:
    the columns bench.env.identity gives) has not yet measured in the store (all with `force`);
    append each row as its run ends, stamped with the machine that ran it, and hand it to `on_row`.
    `jobs` (bench.executors.Submitit) runs the points as jobs; by default they run here, one after
    another. A point asking for more GPUs than are present (with no GPU at all, gpus=N trains on N
    logical CPU devices), or for a batch at least as large as one that ran out of memory on its
    ladder, is a `skipped` row. Returns the new rows."""
    console = console or Console(stderr=True)
    identity = identity or {}
    measured_by = {k: identity[k] for k in ("commit",)} if jobs else identity  # jobs land on other machines
    index = DatasetIndex.load(index_path) if Path(index_path).is_file() else None
    done = set() if force else store.done(measured_by)
    todo = [s for s in specs if s.run_id not in done]
    if len(todo) < len(specs):
        console.print(f"{len(specs) - len(todo)} of {len(specs)} runs already in {store.root}: skipped (--force reruns them)")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), EtaColumn())
    ladders = BatchLadders([] if force else store.latest(measured_by))
    new = []
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("sweep", total=len(todo), ran=0)

        def finish(spec: RunSpec, record: dict) -> None:
            record.update({k: v for k, v in identity.items() if not record.get(k)})  # skipped rows: ours
            store.append(record)
            ladders.note(record)
            if on_row:
                on_row(record)
            new.append(record)
            role = ", ceiling" if spec.role == "ceiling" else ""
            progress.console.print(f"\\[{len(new)}/{len(todo)}] {spec.label()} (r{spec.repeat}{role}): "
                                   f"{_summary(record)}", highlight=False, soft_wrap=True)
            if record["status"] != "skipped":
                progress.update(task, ran=progress.tasks[0].fields["ran"] + 1)
            progress.advance(task)

        def runnable():
            """The points to run, each decided when its turn comes: a ladder may stop it."""
            for spec in todo:
                progress.update(task, description=spec.label())
                why = _why_skipped(spec, gpus_present, index) or ladders.stopped(spec)
                if why:
                    finish(spec, RunRecord.for_spec(spec, status="skipped", error=why).to_dict())
                else:
                    yield spec

        if jobs is None:
            results = ((spec, run_point(spec, index_path, store, timeout_s, interval)) for spec in runnable())
        else:
            results = jobs.run(runnable(), (str(index_path), str(store.root), timeout_s, interval))
        try:
            for spec, record in results:
                finish(spec, record)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted: {len(new)} of {len(todo)} runs finished, kept in {store.root}; "
                              f"the same command again runs the other {len(todo) - len(new)}") from None
    return new
