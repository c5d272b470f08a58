"""A run's fresh process, forked from a server that imported TensorFlow and Keras once.

Importing TensorFlow and Keras takes 3 to 7 s on the 2-core CPU machine, every run. A server
process (multiprocessing's forkserver) imports them once, before any thread pool or device
exists, and forks each run from itself: each run still has a process of its own, its own
session, log and exit status (the isolation rule stands), without paying the import. Only where
a fork is safe: a TensorFlow run that imports no other framework, on one process, without a
memory cap (an address-space cap set after the import would count the server's mappings), and
with no GPU in use (a CUDA context must not cross a fork). Everything else, and every run with
GPUBENCH_FORK=0, starts as `python -m bench.run.worker`."""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

from bench.plan.backends import BACKENDS
from bench.plan.grid import frameworks
from bench.plan.knobs import RunSpec

FORK_ENV = "GPUBENCH_FORK"
PRELOADED = "tensorflow"  # the backend whose framework the server imports once (bench/run/preload.py)
_server = None


def forkable(spec: RunSpec, env: dict, mem_limit_mb: int | None) -> bool:
    """Whether this run may be forked from the server (the module's docstring says when)."""
    return (
        env.get(FORK_ENV, "1") != "0"
        and spec.backend == PRELOADED
        and spec.hosts == 1
        and not mem_limit_mb
        and set(frameworks(spec)) <= {BACKENDS[PRELOADED].package}
        and env.get("CUDA_VISIBLE_DEVICES") == "-1"
    )


class Forked:
    """A forked run as the runner handles a subprocess: pid, poll, wait."""

    def __init__(self, process):
        self.process = process
        self.pid = process.pid

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self) -> int:
        self.process.join()
        return self.process.exitcode


def start(args: list[str], env: dict, log: Path) -> Forked:
    """The worker's main(args), in a process forked from the server, its output in `log`."""
    global _server
    if _server is None:
        _server = multiprocessing.get_context("forkserver")
        _server.set_forkserver_preload(["bench.run.preload"])
    process = _server.Process(target=_child, args=(args, env, str(log)), name="gpubench-run")
    process.start()
    return Forked(process)


def as_plain_process() -> None:
    """The multiprocessing start method a plain `python` process has (fork on Linux up to Python
    3.13): a forkserver's child inherits "forkserver", and a user's PyDataset(use_multiprocessing=True)
    would then start its pool from a fresh server every epoch, each worker importing TensorFlow
    again (measured: 5 s an epoch at 1 worker, 10 s at 4, against 0.1 s from a plain process)."""
    multiprocessing.set_start_method(None, force=True)


def _child(args: list[str], env: dict, log: str) -> None:
    """In the forked process: its own session (the runner kills the group), the run's environment,
    its output to the run's log, then the worker."""
    os.setsid()
    as_plain_process()
    os.environ.clear()
    os.environ.update(env)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    from bench.run import worker

    sys.exit(worker.main(args))
