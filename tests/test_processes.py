"""bench/run/processes.py and launcher.py without starting a worker: a multi-process run's samples
merged, which runs are forked, how a forked run pools processes."""

import os
from pathlib import Path

import pandas as pd

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


def test_only_runs_a_fork_cannot_harm_are_forked_from_the_server():
    """TensorFlow alone, one process, no memory cap, no GPU in use (bench/run/launcher.py)."""
    from bench.plan.grid import one_point
    from bench.run import launcher

    cpu = {"CUDA_VISIBLE_DEVICES": "-1"}
    tf_keras = one_point({"backbone": "tiny", "pipeline": "keras"})
    assert launcher.forkable(tf_keras, cpu, None)
    assert launcher.forkable(one_point({"backbone": "tiny", "pipeline": "tfdata"}), cpu, None)
    assert not launcher.forkable(tf_keras, {}, None)  # a GPU may be in use: a CUDA context must not cross a fork
    assert not launcher.forkable(tf_keras, cpu, 2000)  # the cap would count the server's mappings
    assert not launcher.forkable(tf_keras, {**cpu, launcher.FORK_ENV: "0"}, None)
    assert not launcher.forkable(one_point({"backbone": "tiny", "pipeline": "keras", "hosts": 2}), cpu, None)
    assert not launcher.forkable(
        one_point({"backbone": "tiny", "pipeline": "torch", "backend": "tensorflow"}), cpu, None
    )  # torch is hidden in the server
    assert not launcher.forkable(one_point({"backbone": "tiny", "backend": "jax"}), cpu, None)


def test_a_forked_run_pools_processes_as_a_plain_process_does(tmp_path):
    """A forkserver's child inherits its start method; a run forked from the launcher's server sets
    back the one a plain process has, so that a PyDataset's process pool starts as in the user's fit."""
    import subprocess
    import sys

    probe = (
        "import multiprocessing as mp\n"
        "def child(path):\n"
        "    from bench.run.launcher import as_plain_process\n"
        "    before = mp.get_start_method()\n"
        "    as_plain_process()\n"
        "    open(path, 'w').write(before + ' ' + mp.get_start_method())\n"
        "if __name__ == '__main__':\n"
        "    print(mp.get_start_method())\n"
        "    p = mp.get_context('forkserver').Process(target=child, args=(__import__('sys').argv[1],))\n"
        "    p.start(); p.join()\n"
    )
    script = tmp_path / "probe.py"
    script.write_text(probe)
    plain = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "child")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert (tmp_path / "child").read_text() == f"forkserver {plain.stdout.strip()}"


def test_a_machines_peak_is_probed_once_and_reused_by_its_later_sweeps(tmp_path, monkeypatch):
    """The peak is the machine's: a second sweep on the same fingerprint takes it from the cache
    (and says so), another machine probes its own, and a failed probe is not kept."""
    probed = []

    def probe(backend, precision, timeout_s, env):
        probed.append((backend, precision))
        assert env["CUDA_VISIBLE_DEVICES"] == "-1"  # given as a worker is
        return (
            ({}, "no device")
            if precision == "mixed_float16"
            else ({"tflops": 1.5, "matmul_precision": "float32"}, None)
        )

    monkeypatch.setattr(processes, "_peak_probe", probe)
    settings = {("jax", "float32"), ("jax", "mixed_float16")}
    hidden = {"CUDA_VISIBLE_DEVICES": "-1"}
    first = processes.measure_peaks(settings, "m1", given=hidden, cache_dir=tmp_path)
    again = processes.measure_peaks(settings, "m1", given=hidden, cache_dir=tmp_path)
    other = processes.measure_peaks({("jax", "float32")}, "m2", given=hidden, cache_dir=tmp_path)
    assert probed == [("jax", "float32"), ("jax", "mixed_float16"), ("jax", "mixed_float16"), ("jax", "float32")]
    assert first["peak_tflops"] == again["peak_tflops"] == {"jax": {"float32": 1.5, "mixed_float16": None}}
    assert not first["peak_cached"] and set(again["peak_cached"]["jax"]) == {"float32"}
    assert again["peak_errors"] == {"jax": {"mixed_float16": "no device"}} and not other["peak_cached"]

    # one box, two GPU models: each probes its own peak, though NVML's fingerprint is the same
    def peaks(label):
        return processes.measure_peaks({("jax", "float32")}, "m3", label=label, given=hidden, cache_dir=tmp_path)

    peaks("h100")
    assert peaks("h100")["peak_cached"] and not peaks("2080ti")["peak_cached"]


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
