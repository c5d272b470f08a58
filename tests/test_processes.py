"""bench/run/processes.py and launcher.py without starting a worker: a multi-process run's samples
merged, which runs are forked and from which server; and forked runs from a real server."""

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from bench.run import processes
from bench.run.processes import _merge_samples

ROOT = Path(__file__).resolve().parent.parent


def test_every_process_samples_land_in_the_run_file_with_a_process_column(tmp_path):
    paths = [tmp_path / "r0.csv", tmp_path / ".r0.p1.csv"]
    pd.DataFrame({"t_s": [0.5, 1.0], "cpu_util": [10.0, 20.0]}).to_csv(paths[0], index=False)
    pd.DataFrame({"t_s": [0.5], "cpu_util": [30.0]}).to_csv(paths[1], index=False)
    _merge_samples(paths)
    merged = pd.read_csv(paths[0])
    assert merged.process.tolist() == [0, 0, 1] and merged.cpu_util.tolist() == [10.0, 20.0, 30.0]
    assert "host" not in merged and not paths[1].exists()


def test_only_runs_a_fork_cannot_harm_are_forked_from_a_server():
    """One process, no address-space cap; on the CPU any backend and a user's code, where a GPU may be in
    use only jax and torch without TensorFlow or DALI beside them (bench/run/launcher.py)."""
    from bench.plan.grid import one_point
    from bench.run import launcher

    cpu, gpu = {"CUDA_VISIBLE_DEVICES": "-1"}, {}

    def point(**knobs):
        return one_point({"backbone": "tiny", "pipeline": "keras", **knobs})

    for backend in ("tensorflow", "jax", "torch"):
        assert launcher.forkable(point(backend=backend), cpu, None)
        assert launcher.forkable(point(backend=backend, pipeline="tfdata"), cpu, None)
        assert not launcher.forkable(point(backend=backend), {**cpu, launcher.FORK_ENV: "0"}, None)
        assert not launcher.forkable(point(backend=backend), cpu, print)  # the cap would count the server's mappings
        assert not launcher.forkable(point(backend=backend, hosts=2), cpu, None)
        user = point(backend=backend, pipeline="tests.user_pipelines:watched")
        assert launcher.forkable(user, cpu, None) and not launcher.forkable(user, gpu, None)  # it may import TensorFlow
    assert launcher.forkable(point(backend="jax"), gpu, None) and launcher.forkable(point(backend="torch"), gpu, None)
    assert launcher.forkable(point(backend="jax", pipeline="torch"), gpu, None)
    assert not launcher.forkable(point(backend="tensorflow"), gpu, None)  # it cannot be asked whether CUDA started
    assert not launcher.forkable(
        point(backend="jax", pipeline="tfdata"), gpu, None
    )  # TensorFlow starts CUDA to hide it


def test_a_server_serves_only_runs_whose_imports_read_what_its_own_read():
    from bench.plan.grid import one_point
    from bench.run import backends, launcher

    jax = one_point({"backbone": "tiny", "pipeline": "keras", "backend": "jax"})
    env = {"CUDA_VISIBLE_DEVICES": "-1", "JAX_PLATFORMS": "cpu", "KERAS_BACKEND": "jax"}
    same = launcher.key(jax, env)
    assert launcher.key(jax, {**env, backends.GPU_MEMORY_FRACTION_ENV: "0.5"}) == same  # read once a device starts
    others = [
        launcher.key(jax, {**env, "JAX_PLATFORMS": ""}),
        launcher.key(jax, {**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}),
        launcher.key(jax, {**env, "CUDA_VISIBLE_DEVICES": "0"}),
        launcher.key(one_point({"backbone": "tiny", "pipeline": "keras", "backend": "jax", "gpus": 2}), env),
        launcher.key(one_point({"backbone": "tiny", "pipeline": "tfdata", "backend": "jax"}), env),
        launcher.key(one_point({"backbone": "tiny", "pipeline": "keras", "backend": "torch"}), env),
    ]
    assert len({same, *others}) == 1 + len(others)
    tf = {**env, "KERAS_BACKEND": "tensorflow"}  # tf.data feeds TensorFlow from the server keras's runs use
    assert launcher.key(one_point({"backbone": "tiny", "pipeline": "tfdata", "backend": "tensorflow"}), tf) == (
        launcher.key(one_point({"backbone": "tiny", "pipeline": "keras", "backend": "tensorflow"}), tf)
    )


@pytest.mark.slow  # runs a framework in this process
def test_a_server_refuses_where_a_framework_started_or_may_have_started_a_device(monkeypatch):
    from bench.run import backends, launcher

    assert launcher._device_started(["tensorflow"], on_gpu=False) is None  # its CPU runtime: forked as before
    assert launcher._device_started(["tensorflow"], on_gpu=True) == "tensorflow may have started a device"
    # jax as a server finds it after its imports, whatever an earlier test of this worker ran on it
    monkeypatch.setattr(backends.of("jax"), "no_device_started", lambda: True)
    assert launcher._device_started(["jax", "nvidia.dali"], on_gpu=True) == "nvidia.dali may have started a device"
    assert launcher._device_started(["jax"], on_gpu=True) is None
    monkeypatch.setattr(backends.of("jax"), "no_device_started", lambda: False)  # as after jax.devices()
    assert launcher._device_started(["jax"], on_gpu=False) == "jax started a device"


@pytest.mark.slow
def test_forked_runs_have_their_own_session_exit_and_log_and_end_with_the_server(tmp_path, monkeypatch):
    """Runs forked from one jax server: killing one's group leaves the others; another fails
    with its traceback in its own log and its status; it pools processes as a plain process does,
    in the folder the sweep is in when it starts it, not the server's, and finds its modules there as
    `python -m` does; a run still going when the sweep's pipe closes is killed with the server."""
    from bench.plan.grid import one_point
    from bench.run import launcher

    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    spec = one_point({"backbone": "tiny", "pipeline": "synthetic", "backend": "jax"})
    release = tmp_path / "release"
    cmd = [sys.executable, "-m", "tests.launched", str(release)]
    monkeypatch.chdir(tmp_path)  # the server starts here, with the first run
    runs = [launcher.start(spec, cmd, env, Path(f"{k}.log")) for k in (0, 2)]
    (tmp_path / "later").mkdir()
    monkeypatch.chdir(tmp_path / "later")
    runs.insert(1, launcher.start(spec, cmd, env, Path("1.log")))
    assert all(runs) and len({run.pid for run in runs}) == 3
    assert all(os.getsid(run.pid) == run.pid for run in runs)  # each its own session, so its own group
    server = runs[0].server
    assert all(run.server is server for run in runs) and server.process.pid not in {run.pid for run in runs}
    os.killpg(runs[0].pid, signal.SIGKILL)
    assert runs[0].wait() == -signal.SIGKILL and runs[1].poll() is None
    release.write_text("")
    assert runs[1].wait() == 3
    log = (tmp_path / "later" / "1.log").read_text()
    plain = subprocess.run(
        [sys.executable, "-c", "import multiprocessing as m; print(m.get_start_method())"],
        capture_output=True,
        text=True,
    )
    assert f"start method {plain.stdout.strip()} in {tmp_path / 'later'}\n" in log
    assert int(log.split("frozen ")[1].split()[0]) > 100_000  # the server's imports, which its GC skips
    assert "Traceback (most recent call last)" in log and "RuntimeError: released" in log
    assert "leaves with status 3" in log  # its output flushed as it exits, without the teardown
    assert runs[2].wait() == 3  # released too; a fourth, still waiting, dies with the server
    (tmp_path / "later" / "here.py").write_text("print('found here')\n")  # not where the server started
    found = launcher.start(spec, [sys.executable, "-m", "here"], env, Path("here.log"))
    assert found.wait() == 0 and (tmp_path / "later" / "here.log").read_text() == "found here\n"
    release.unlink()
    last = psutil.Process(launcher.start(spec, cmd, env, Path("3.log")).pid)
    # a process forked from this one (a Keras loader pool left behind) holds the server's pipe open
    holder = multiprocessing.get_context("fork").Process(target=time.sleep, args=(300,), daemon=True)
    holder.start()
    stopping = threading.Thread(target=launcher.stop, daemon=True)
    stopping.start()
    stopping.join(timeout=120)
    holder.kill()
    assert not stopping.is_alive() and server.process.returncode == 0
    gone, _ = psutil.wait_procs([last], timeout=60)
    assert gone


def test_each_worker_is_given_the_checks_variables_on_top_of_this_processs_environment(monkeypatch):
    """doctor.check's variables (--gpu cpu's hidden GPUs, the label) reach every process of a run,
    over this process's own, which stays as it was."""
    from bench.run import gate

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("KEPT", "yes")
    monkeypatch.delenv(gate.LABEL_ENV, raising=False)
    given = {"CUDA_VISIBLE_DEVICES": "-1", "JAX_PLATFORMS": "cpu", gate.LABEL_ENV: "cpu"}
    for env in processes._host_env(2, 1, given):
        assert {k: env[k] for k in given} == given and env["KEPT"] == "yes"
        assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert [env["KERAS_DISTRIBUTION_PROCESS_ID"] for env in processes._host_env(2, 1, given)] == ["0", "1"]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0" and gate.LABEL_ENV not in os.environ
