"""make gpu-check's checker fails loudly, naming the rows, on a folder measured on a CPU of a
machine whose (stand-in) NVML sees a GPU: the checks a first real GPU must pass can fail."""

import json

from bench import gpucheck
from bench.output import report
from tests.conftest import results


def test_the_gpu_check_fails_a_cpu_folder_naming_its_rows(tmp_path, capsys):
    folder = tmp_path / "cpu"
    gpus = [{"index": 0, "name": "NVIDIA GeForce RTX 2080 Ti", "memory_mb": 11264.0}]
    results(
        folder,
        {1: [10.0, 11.0]},
        env={"cpu": "Test CPU", "cpu_threads": 2, "gpus": gpus},
        label="2080ti",
        train_device="cpu: /device:CPU:0",
        gpu_util_mean=0.0,
    )
    report.write(folder)
    ids = [json.loads(line)["run_id"] for line in (folder / "runs.jsonl").read_text().splitlines()]
    assert gpucheck.main([str(folder)]) == 1
    said = capsys.readouterr().err.splitlines()
    assert any("train_device is not the 2080ti in 2 row(s): " + ", ".join(ids) in line for line in said)
    assert any("GPU utilisation over the window is 0 or empty in 2 row(s)" in line for line in said)
    results(tmp_path / "mislabelled", {1: [10.0]}, env={"gpus": gpus}, label="h100", train_device="gpu: NVIDIA H100")
    assert any(
        "labelled 'h100', NVML saw '2080ti'" in problem for problem in gpucheck.problems(tmp_path / "mislabelled")
    )
