"""A run's fresh process, forked from a server that imported its backend's framework and Keras once.

Importing a framework and Keras takes seconds every run (on the 2-core CPU machine: jax 2.3 s,
torch 4.0 s, TensorFlow 3.8 s, results/reference/cpu/startup; on a lent H200 a jax run's start-up
was 5.4-6.0 s). A server
(`python -m bench.run.launcher`, one per backend and import-time environment) imports them once
and forks each run from its one thread: each run still has a process of its own, its own
session (the runner kills its group), log, exit status and memory (the isolation rule stands).
A server is keyed by all a run's imports read: its backend, frameworks, gpus (jax's logical
devices) and environment (CUDA_VISIBLE_DEVICES, JAX_PLATFORMS, KERAS_BACKEND, XLA_FLAGS, caches
...), all but the per-run GPU memory cap, read once a device starts; any other run gets another
server. The server stops when the sweep tells it to, when the sweep's pipe to it closes (the sweep
was killed) or with the sweep (PR_SET_PDEATHSIG), and kills the runs it forked that are still going.

A run is forked only where a fork is safe: one process (hosts 1), no address-space cap (it would
count the server's mappings), GPUBENCH_FORK not "0"; on the CPU (CUDA_VISIBLE_DEVICES=-1) any
backend, and a user's pipeline or model from a server that imported every installed framework (they
may import any, as grid.frameworks says, so no GPU run of theirs is forked); where a GPU may be used
only jax and torch runs that import no other framework (TensorFlow, even as a pipeline, starts
CUDA when it is kept off the GPU; DALI cannot be asked), and only where the server finds, after its
imports, that no device was started (jax: no backend initialised; torch: CUDA not initialised): a
CUDA context must not cross a fork. A server that finds one refuses, and its runs start as
`python -m bench.run.worker`, as every other run does.

Verified on the CPU only (no GPU was at hand): forked runs of each backend train, fail and are
killed as their own (tests/test_processes.py, the smoke sweeps); the imports leave one or two idle
native threads beside the server's own, which a fork does not copy. Not verified: that on a GPU
jax's and torch's imports start no device (the server's check is there for that), nor the start-up
a forked run saves there: scripts/gpu_check_device.sh measures both.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import logging
import os
import runpy
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

from bench.plan.backends import BACKENDS
from bench.plan.grid import frameworks, installed
from bench.plan.knobs import RunSpec
from bench.run import backends

FORK_ENV = "GPUBENCH_FORK"
PER_RUN = (backends.GPU_MEMORY_ENV, backends.GPU_MEMORY_FRACTION_ENV)  # read as a device starts: not a key
FORKS_ON_GPU = {"jax", "torch"}  # frameworks whose import starts no device, as the server checks
# what a run imports before it trains (bench/run/worker.py's train), imported once by the server
WORKER_IMPORTS = (
    "keras",
    "bench.run.worker",
    "bench.run.assemble",
    "bench.run.doctor",
    "bench.run.gate",
    "bench.run.training",
)
STOP = b'{"stop": true}'  # the sweep's last request
READY_S = 300  # a server whose imports take longer serves no run: they start as processes
_servers: dict[tuple, Server | None] = {}


def on_cpu(env: dict) -> bool:
    """The run's GPUs are hidden (--gpu cpu, or a machine without one)."""
    return env.get("CUDA_VISIBLE_DEVICES") == "-1"


def forkable(spec: RunSpec, env: dict, capped) -> bool:
    """Whether this run may be forked from a server (the module's docstring says when); `capped` is
    processes.memory_limit's pre-exec hook, None without an address-space cap."""
    return (
        env.get(FORK_ENV, "1") != "0"
        and spec.hosts == 1
        and capped is None
        and (on_cpu(env) or set(frameworks(spec)) <= FORKS_ON_GPU)
    )


def key(spec: RunSpec, env: dict) -> tuple:
    """What a server is for: what the run's imports read."""
    return spec.backend, frameworks(spec), spec.gpus, tuple(sorted(i for i in env.items() if i[0] not in PER_RUN))


def start(spec: RunSpec, cmd: list[str], env: dict, log: Path) -> Forked | None:
    """`cmd` (`python -m module args`) as a process forked from the server for this run, its output
    in `log`; None where the server could not start or refuses (the run then starts as `cmd`)."""
    server_key = key(spec, env)
    if server_key not in _servers:
        if not _servers:
            atexit.register(stop)
        _servers[server_key] = Server.started(spec, dict(server_key[3]))
    server = _servers[server_key]
    pid = server and server.fork({"module": cmd[2], "args": cmd[3:], "env": env, "log": str(log), "cwd": os.getcwd()})
    return Forked(server, pid) if pid else None


def stop() -> None:
    """Every server ends: told to, then its pipe closed. Its end of file alone is not enough: a
    process forked from the sweep's (a Keras loader pool left by code run in it) holds the pipe."""
    for server in filter(None, _servers.values()):
        with contextlib.suppress(BrokenPipeError):
            server.process.stdin.write(STOP + b"\n")
            server.process.stdin.close()
        server.process.wait()
    _servers.clear()


class Server:
    """The sweep's end of one server: requests down its stdin, a line of JSON back for each fork
    (its pid) and each exit (its status, as subprocess gives it)."""

    def __init__(self, process: subprocess.Popen):
        self.process, self.codes, self._pending = process, {}, b""

    @classmethod
    def started(cls, spec: RunSpec, env: dict) -> Server | None:
        """A server that imported the run's frameworks and is ready, or None (it refused or died)."""
        argv = [sys.executable, "-m", __name__, spec.backend, str(spec.gpus), ",".join(frameworks(spec))]
        server = cls(
            subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        )
        said = server._next(READY_S)  # its start-up lines (TensorFlow's oneDNN, cuda drivers) go nowhere
        if said and said.get("ready"):
            return server
        server.process.kill()
        server.process.wait()
        return None

    def fork(self, request: dict) -> int | None:
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return None
        while (said := self._next(None)) is not None:
            if "forked" in said:
                return said["forked"]
        return None

    def exit_code(self, pid: int, block: bool) -> int | None:
        """The run's exit status once it ended; a run whose server died died with it (SIGKILL)."""
        while pid not in self.codes:
            if self._next(None if block else 0) is None:
                if self.process.poll() is not None:  # the server is gone, and its runs with it
                    self.codes[pid] = -signal.SIGKILL
                break
        return self.codes.get(pid)

    def _next(self, timeout: float | None) -> dict | None:
        """The server's next message (exits noted in `codes`), None after `timeout` or once it is gone."""
        while b"\n" not in self._pending:
            if not select.select([self.process.stdout], [], [], timeout)[0]:
                return None
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                self.process.wait()
                return None
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        said = json.loads(line)
        if "exited" in said:
            self.codes[said["exited"]] = said["code"]
        return said


class Forked:
    """A forked run as the runner handles a subprocess: pid, poll, wait."""

    def __init__(self, server: Server, pid: int):
        self.server, self.pid = server, pid

    def poll(self) -> int | None:
        return self.server.exit_code(self.pid, block=False)

    def wait(self) -> int:
        return self.server.exit_code(self.pid, block=True)


# The server's side, in `python -m bench.run.launcher BACKEND GPUS FRAMEWORKS`.


def main(backend: str, gpus: str, uses: str) -> int:
    """Imports, says whether it serves, then forks a run per request until the sweep's pipe closes;
    in a forked child, runs that request's module."""
    from bench.run import devices, worker

    started_in = os.getcwd()
    worker.die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the sweep's to handle: it ends the runs
    devices.prepare(backend, int(gpus), tuple(uses.split(",")))
    for module in (*[p for p in uses.split(",") if installed(p)], *WORKER_IMPORTS):
        importlib.import_module(module)
    why = _device_started(uses.split(","), on_gpu=not on_cpu(os.environ))
    _say({"ready": why is None, "why": why})
    # the imports' objects out of every run's garbage collector: a full collection in a forked run
    # walked all of them (550,000 with TensorFlow, jax, torch and Keras: 0.25 s of CPU and 17,000
    # pages copied each time on the 2-core machine); frozen, the run shares those pages with the server
    gc.freeze()
    request = why is None and serve(sys.stdin.fileno())
    return run(request, started_in) if request else 0


def _device_started(packages: list[str], on_gpu: bool) -> str | None:
    """Which framework started a device (on the CPU too: a jax CPU client's threads would not cross
    the fork), or on a GPU may have (it cannot be asked), or None."""
    for package in packages:
        untouched = backends.of(package).no_device_started() if package in BACKENDS else None
        if untouched is False or (on_gpu and untouched is None):
            return f"{package} {'started' if untouched is False else 'may have started'} a device"
    return None


def _say(message: dict) -> None:
    os.write(1, json.dumps(message).encode() + b"\n")


def serve(requests: int) -> dict | None:
    """Forks a run for each line read from `requests` and reaps them (waitpid, one thread); returns
    the request in the forked child, None in the server once the sweep has gone or said stop (its
    runs killed)."""
    running, pending = set(), b""
    while True:
        if select.select([requests], [], [], 0.1 if running else None)[0]:
            chunk = os.read(requests, 65536)
            *lines, pending = (pending + chunk).split(b"\n")
            if not chunk or STOP in lines:
                for pid in running:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
                return None
            for line in lines:
                pid = _fork()
                if not pid:
                    return json.loads(line)
                running.add(pid)
                _say({"forked": pid})
        while running and (ended := os.waitpid(-1, os.WNOHANG))[0]:
            running.discard(ended[0])
            _say({"exited": ended[0], "code": os.waitstatus_to_exitcode(ended[1])})


def _fork() -> int:
    """os.fork, the child in a session of its own before its pid is told (so that the runner's
    kill of its group cannot come first)."""
    read, write = os.pipe()
    pid = os.fork()
    if not pid:
        os.close(read)
        os.setsid()
        os.close(write)
        return 0
    os.close(write)
    os.read(read, 1)  # end of file once the child is in its session
    os.close(read)
    return pid


def run(request: dict, started_in: str) -> NoReturn:
    """In the forked child: the run's environment and working folder (the sweep's now, which may not
    be the one the server started in: `python -m` looks for modules there first), its output to its
    log, no stdin, Ctrl-C as a plain process has it, then the module as `python -m` runs it (its exit
    is the process's). Once the module has exited with a status, the process ends at once, its
    output flushed: the interpreter's teardown of the server's imports would cost every run CPU
    after its record is written (2.5 s on 2 cores with TensorFlow, jax, torch and Keras); the
    runner then kills the run's group, as it does after any run."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(request["env"])
    if sys.path[0] == started_in:
        sys.path[0] = request["cwd"]
    os.chdir(request["cwd"])
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    sys.argv = [request["module"], *request["args"]]
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as done:
        if not isinstance(done.code, int | None):
            raise  # a message to print: as Python prints it
        code = done.code or 0
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
