"""One point in fresh worker processes (one per host when hosts > 1, joined on a localhost port):
launched, timed out, killed with their loader processes, and read back as one row whatever
became of them (a failure classed from the exit status and the log: oom, error, timeout)."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.plan.knobs import SAMPLE_INTERVAL_S, RunSpec
from bench.results.machine import this_machine
from bench.results.record import RunRecord
from bench.results.store import ResultStore
from bench.run import backends, launcher
from bench.run.worker import OOM_RE


def _kill_group(pid: int) -> None:
    """The worker and any loader processes it left behind."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _log_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(errors="replace").splitlines() if line.strip()] if path.is_file() else []


def memory_limit(mb: int | None, env: dict, gpus: int) -> tuple:
    """(a pre-exec hook, the worker's environment) that cap a run's memory at `mb`: on the CPU its
    address space (allocations past it fail as they would on a full device: an out-of-memory
    search testable on a CPU); on a GPU the memory its backend's allocator may take of the device
    (an address-space cap breaks CUDA's start-up, which reserves far more than it uses)."""
    if not mb:
        return None, env
    from bench.results import nvml

    on = [] if env.get("CUDA_VISIBLE_DEVICES") == "-1" else nvml.used(nvml.nvml_gpus()[0], gpus)
    if not on:

        def cap():
            resource.setrlimit(resource.RLIMIT_AS, (mb * 2**20, mb * 2**20))

        return cap, env
    total = min((g["memory_mb"] for g in on if g.get("memory_mb")), default=None)
    fraction = f"{min(1.0, mb / total):.4f}" if total else ""
    return None, {**env, backends.GPU_MEMORY_ENV: str(mb), backends.GPU_MEMORY_FRACTION_ENV: fraction}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def own_gpus(hosts: int, gpus: int, environ: dict) -> list[dict]:
    """CUDA_VISIBLE_DEVICES of each of `hosts` processes on this machine: `gpus` GPUs of its own
    each (as on `hosts` machines) of those `environ` leaves visible, in NVML's order; nothing where
    the run sees no GPU or too few (the sweep refuses that before it starts: gate.check_hosts)."""
    from bench.results import nvml

    seen = nvml.visible(nvml.nvml_gpus()[0], environ)
    if hosts == 1 or len(seen) < hosts * gpus:
        return [{} for _ in range(hosts)]
    names = [g["uuid"] if g["mig"] else str(g["index"]) for g in seen]
    return [{"CUDA_VISIBLE_DEVICES": ",".join(names[k * gpus : (k + 1) * gpus])} for k in range(hosts)]


def _host_env(hosts: int, gpus: int = 1, given: dict | None = None) -> list[dict]:
    """Each process's environment: this one's with the variables `given` (doctor.check's), CUDA
    numbering the GPUs in NVML's order; with hosts > 1, Keras's multi-process variables (the
    coordinator on a free localhost port) and GPUs of its own."""
    base = {**os.environ, "CUDA_DEVICE_ORDER": "PCI_BUS_ID", **(given or {})}
    if hosts == 1:
        return [base]
    address = f"localhost:{_free_port()}"
    return [
        dict(
            base,
            KERAS_DISTRIBUTION_JOB_ADDRESSES=address,
            KERAS_DISTRIBUTION_NUM_PROCESSES=str(hosts),
            KERAS_DISTRIBUTION_PROCESS_ID=str(k),
            **own,
        )
        for k, own in enumerate(own_gpus(hosts, gpus, base))
    ]


def run_point(
    spec: RunSpec,
    index_path: Path,
    store: ResultStore,
    timeout_s: float,
    interval: float = SAMPLE_INTERVAL_S,
    mem_limit_mb: int | None = None,
    given: dict | None = None,
) -> dict:
    """Run one point in fresh processes, each given the variables `given` (doctor.check's) on top
    of this process's environment, and return its record, stamped with this machine and with
    whether it was forked from its backend's launcher."""
    forked = []
    record = _run(spec, index_path, store, timeout_s, interval, mem_limit_mb, given, forked)
    return {**record, "forked": bool(forked), **this_machine()}


def _run(
    spec: RunSpec,
    index_path: Path,
    store: ResultStore,
    timeout_s: float,
    interval: float,
    mem_limit_mb: int | None,
    given: dict | None,
    forked: list,
) -> dict:
    """One process, or one per host when hosts > 1 (joined on a localhost port); the record of
    process 0, with every process's samples in one file (a `process` column). A process that fails,
    or the timeout, ends them all: one row. The processes forked from a launcher go in `forked`."""
    hosts = spec.hosts
    part = [""] + [f".p{k}" for k in range(1, hosts)]  # process k's files; process 0's are the run's own
    records = [store.root / f".{spec.run_id}{part[k]}.json" for k in range(hosts)]
    samples = [store.samples / f"{'.' if k else ''}{spec.run_id}{part[k]}.csv" for k in range(hosts)]
    logs = [store.logs / f"{spec.run_id}{part[k]}.log" for k in range(hosts)]
    for path in records:
        path.unlink(missing_ok=True)
    start, procs, returncodes = time.perf_counter(), [], [None] * hosts
    try:
        for k, env in enumerate(_host_env(hosts, spec.gpus, given)):
            cmd = [
                sys.executable,
                "-m",
                "bench.run.worker",
                "--spec",
                json.dumps(dataclasses.asdict(spec)),
                "--index",
                str(index_path),
                "--record",
                str(records[k]),
                "--samples",
                str(samples[k]),
                "--interval",
                str(interval),
                "--process-id",
                str(k),
            ]
            capped, env = memory_limit(mem_limit_mb, env, spec.gpus)
            if started := launcher.forkable(spec, env, capped) and launcher.start(spec, cmd, env, logs[k]):
                forked.append(started)  # the framework imported once, each run still its own process
                procs.append(started)
                continue
            with open(logs[k], "w") as log:
                procs.append(
                    subprocess.Popen(
                        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=capped, env=env
                    )
                )
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
        return RunRecord.for_spec(
            spec, status="timeout", wall_s=wall_s, error=f"no result within the {timeout_s:g} s timeout"
        ).to_dict()
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
                record["proc_cpu_pct_mean"] = every_host_cpu(written)
            elif hosts > 1:
                record["error"] = f"process {failed} of {hosts}: {record['error']}"
            return record
    return _died(
        spec,
        returncodes[failed or 0],
        logs[failed or 0],
        mem_limit_mb,
        wall_s,
        f"process {failed} of {hosts}: " if hosts > 1 else "",
    )


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


def every_host_cpu(records: list[dict]) -> float | None:
    """The run's own CPU on this machine, every process's (one core is 100%): what the report takes
    from the machine's use to find other work's share (`others_cpu_pct`), where process 1 on is the
    run's own, not other work."""
    values = [r.get("proc_cpu_pct_mean") for r in records]
    return None if any(v is None for v in values) else float(sum(values))


def _merge_samples(paths: list[Path]) -> None:
    """Every process's samples in the run's file, with a `process` column (the process number;
    samples files written before it call that column `host`, and nothing reads it by name)."""
    import pandas as pd

    parts = [pd.read_csv(path).assign(process=k) for k, path in enumerate(paths) if path.is_file()]
    if parts:
        pd.concat(parts, ignore_index=True).to_csv(paths[0], index=False)
    for path in paths[1:]:
        path.unlink(missing_ok=True)


def _died(spec: RunSpec, returncode: int, log_path: Path, mem_limit_mb: int | None, wall_s: float, who: str) -> dict:
    """The row of a worker that ended without a record: what its exit and its log say."""
    lines = _log_lines(log_path)
    said_oom = next((line for line in reversed(lines) if OOM_RE.search(line)), None)
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
    return RunRecord.for_spec(
        spec, status=status, wall_s=wall_s, error=who + (f"{why}; last log line: {tail}" if tail else why)
    ).to_dict()
