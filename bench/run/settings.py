"""How a sweep runs (Options, one object from the command line down to each run) and what its
session prepared before the first run (Prepared): what the runner takes whole."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

from bench.plan.knobs import QUIET_WAIT_S, SAMPLE_INTERVAL_S
from bench.plan.presets import TIMEOUT_S
from bench.results.store import ResultStore
from bench.run.executors import Slurm


@dataclasses.dataclass(frozen=True)
class Options:
    """How a sweep runs, whatever its grid: one object from the command line to the runs, so that
    an option added is added here and where it is read, not threaded through every call."""

    gpu: str = "auto"  # the label to file under (auto: NVML's)
    data: str | None = None  # a flow_from_directory tree (None: a synthetic one)
    out: str | None = None  # the results folder (None: results/<gpu>/<host>/<preset>)
    timeout_s: float = TIMEOUT_S  # seconds one run may take
    interval: float = SAMPLE_INTERVAL_S  # seconds between CPU/GPU samples
    force: bool = False  # measure every point anew
    ceilings: bool = False  # measure each point's two ceilings too
    executor: str = "local"  # local, submitit-local or slurm
    max_parallel: int = 1
    slurm: Slurm = Slurm()
    profile: str | None = None  # a point id, or "fastest": one more run of it, traced
    looks: bool = True  # one more repeat where the noise could not settle a verdict (bench/passes.py)
    as_needed: bool = False  # repeats beyond the first only where a verdict depends on them (bench/passes.py)
    data_root: Path = Path("data")  # where a preset's synthetic tree is made
    results_root: Path = Path("results")  # where the results folder is, without `out`
    peak_cache: Path | None = None  # the folder of the machine's peaks.json (None: devices.cache_root())
    command: str = ""  # the command line as typed, for sweep.json
    mem_limit_mb: int | None = None  # a cap on each worker's address space (`gpubench fit` on a CPU)
    # the sweep command's own: its run count said once the checks pass, and its plan kept in sweep.json
    # (the report leaves out the points an earlier sweep planned that never ran: bench/output/report.py)
    whole_sweep: bool = False
    quiet_wait_s: float = QUIET_WAIT_S  # at most, after a run other work slowed, before the next (bench/run/runner.py)


class Prepared(NamedTuple):
    """What every run of a session needs, once its checks passed."""

    store: ResultStore
    index_path: Path  # the scanned tree, for the workers
    env: dict  # env.json
    meta: dict  # sweep.json
    given: dict  # the variables each worker is given on top of this process's (doctor.check)
    force: bool = False  # measure every point anew: --force, or the data changed
