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
