"""bench/run/processes.py without starting a worker: a multi-process run's samples merged."""

import pandas as pd

from bench.run.processes import _merge_samples


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
    assert not launcher.forkable(one_point({"backbone": "tiny", "pipeline": "torch", "backend": "tensorflow"}), cpu,
                                 None)  # torch is hidden in the server
    assert not launcher.forkable(one_point({"backbone": "tiny", "backend": "jax"}), cpu, None)
