"""Where a sweep's runs happen: here, one after another (`local`), or as jobs through submitit,
on a Slurm cluster (`slurm`) or as subprocesses of this machine (`submitit-local`, which the
tests use). A job runs the point as `local` would (fresh worker processes) and returns its row;
the sweep process stays the only writer of runs.jsonl, appending each row as its job ends, so a
killed, lost or resumed sweep behaves as it does locally: a lost or failed job is a failed row,
and a resumed sweep submits only the points with no row."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.plan.knobs import RunSpec
from bench.results.record import RunRecord

EXECUTORS = ("local", "slurm", "submitit-local")


@dataclass(frozen=True)
class Slurm:
    """What a Slurm job asks for: a benchmark wants its node to itself (exclusive)."""

    partition: str | None = None
    gpus_per_node: int | None = None
    time_min: int = 60
    exclusive: bool = True


def run_job(
    spec: dict,
    index_path: str,
    store_root: str,
    timeout_s: float,
    interval: float,
    given: dict | None = None,
    sweep_pid: int | None = None,
) -> dict:
    """One point, on whatever machine the job landed on: its row, stamped with that machine,
    whose env.json it leaves beside the folder's (env-<machine>.json) for the report. A local job
    (`sweep_pid`) ends with the sweep that submitted it, and its worker with it."""
    from bench.results.machine import collect, fingerprint_id
    from bench.results.store import ResultStore
    from bench.run.processes import run_point

    if sweep_pid:
        threading.Thread(target=_end_with, args=(sweep_pid,), daemon=True).start()
    env = collect()
    path = Path(store_root) / f"env-{fingerprint_id(env)}.json"
    if not path.is_file():
        path.write_text(json.dumps(env, indent=2))
    return run_point(RunSpec(**spec), Path(index_path), ResultStore(store_root), timeout_s, interval, given=given)


def _end_with(pid: int) -> None:
    """Exit this job the moment process `pid` is gone (submitit's local jobs are not its children,
    so they would outlive a killed sweep); its worker follows (it dies with its parent)."""
    while psutil.pid_exists(pid):
        time.sleep(0.5)
    os._exit(1)


class Submitit:
    """Points as submitit jobs, up to `max_parallel` at once; their rows in the order they end."""

    def __init__(self, cluster: str, folder: Path, max_parallel: int, timeout_s: float, slurm: Slurm = Slurm()):
        import submitit

        self.sweep_pid = os.getpid() if cluster == "local" else None
        self.executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        minutes = math.ceil(timeout_s / 60) + 1  # the run's own timeout ends it first
        options = {"slurm_partition": slurm.partition, "gpus_per_node": slurm.gpus_per_node}
        self.executor.update_parameters(
            timeout_min=max(minutes, slurm.time_min if cluster == "slurm" else 0),
            slurm_exclusive=slurm.exclusive,
            name="gpubench",
            **{k: v for k, v in options.items() if v is not None},
        )
        self.max_parallel = max(1, max_parallel)

    def run(self, specs: Iterator[RunSpec], args: tuple) -> Iterator[tuple[RunSpec, dict]]:
        """`specs` is taken one at a time, as slots free up (a sweep decides each point's turn late)."""
        pending, running = iter(specs), []
        more = True
        while more or running:
            while more and len(running) < self.max_parallel:
                spec = next(pending, None)
                if spec is None:
                    more = False
                else:
                    running.append(
                        (spec, self.executor.submit(run_job, dataclasses.asdict(spec), *args, self.sweep_pid))
                    )
            finished = [(spec, job) for spec, job in running if job.done()]
            for spec, job in finished:
                running.remove((spec, job))
                yield spec, _row(spec, job)
            if not finished:
                time.sleep(0.2)


def label_here(gpus: int) -> str:
    """--gpu auto as the node that runs this job decides it: its GPUs' label, or the refusal."""
    from bench.run import doctor, gate

    return gate.auto_label(doctor.nvml(), gpus)


def node_label(jobs: Submitit, gpus: int) -> str:
    """--gpu auto under Slurm: the label of the GPUs a job is given, decided by one short job on a
    node that trains (the login node's GPUs, or none, say nothing of it); its refusal in one line."""
    from bench.plan.knobs import SpecError

    job = jobs.executor.submit(label_here, gpus)
    try:
        return job.result()
    except Exception as e:
        said = [line for line in str(e).splitlines() if line.strip()] or [repr(e)]  # submitit's: a traceback
        why = re.sub(r"^[\w.]+(Error|Exception): ", "", said[-1].strip())
        raise SpecError(f"--gpu auto on a Slurm node (job {job.job_id}): {why}") from None


def _row(spec: RunSpec, job) -> dict:
    """The job's row, or a failed row saying what became of the job."""
    try:
        return job.result()
    except Exception as e:  # a job that failed, timed out, was cancelled or lost its node
        state = getattr(job, "state", "UNKNOWN")
        status = "timeout" if "TIMEOUT" in str(state) else "error"
        why = " ".join(str(e).split())[-300:]
        return RunRecord.for_spec(spec, status=status, error=f"job {job.job_id} ({state}): {why}").to_dict()


def describe(executor: str, max_parallel: int, slurm: Slurm) -> dict:
    """sweep.json's account of where the runs ran."""
    return {
        "executor": executor,
        "max_parallel": max_parallel,
        **({"slurm": dataclasses.asdict(slurm)} if executor == "slurm" else {}),
    }
