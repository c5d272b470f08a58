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


L4, MIG = "NVIDIA L4", "NVIDIA H100 80GB HBM3 MIG 1g.10gb"


def measured_on(folder, name, label, util, gflops=24.2, math="bfloat16", mig=False):
    """A folder of one model-alone point measured on the GPU `name`: 1,000 images/s of `gflops` per image."""
    from bench.plan.knobs import RunSpec
    from bench.results.record import RunRecord
    from bench.results.store import ResultStore

    store = ResultStore(folder).create()
    for repeat in (0, 1):
        spec = RunSpec(backbone="tiny", input_size=16, batch=8, pipeline="synthetic", repeat=repeat)
        record = RunRecord.for_spec(spec, status="ok", train_img_s=1000.0, total_s=1.0, epochs_timed=3)
        store.append(
            {
                **record.to_dict(),
                "train_images_per_epoch": 100,
                "train_device": f"gpu: {name}",
                "gpu_util_mean": util,
                "train_gflops_per_image": gflops,
                "matmul_precision": math,
            }
        )
    gpu = {"index": 0, "name": name, "uuid": "MIG-1" if mig else "GPU-1", "mig": mig}
    (folder / "env.json").write_text(json.dumps({"cpu": "Test CPU", "cpu_threads": 2, "gpus": [gpu], "gpu_count": 1}))
    (folder / "sweep.json").write_text(json.dumps({"gpu": label, "preset": "t"}))
    report.write(folder)
    return folder


def test_a_good_run_passes_on_a_profiled_gpu_a_mig_slice_and_a_gpu_without_a_sheet(tmp_path, capsys):
    good = [
        measured_on(tmp_path / "l4", L4, "l4", 85.0),  # 24.2 TFLOP/s of the L4's 121: 20%
        measured_on(tmp_path / "mig", MIG, "h100-mig-1g.10gb", None, mig=True),  # no utilisation, no sheet
        measured_on(tmp_path / "a6000", "NVIDIA RTX A6000", "a6000", 90.0),  # no sheet: measured figures alone
        measured_on(tmp_path / "t4", "Tesla T4", "t4", 70.0, math="tf32"),  # no TF32 on a T4: no datasheet MFU
    ]
    assert gpucheck.main([str(f) for f in good]) == 0, capsys.readouterr().err


def test_a_missing_figure_fails_where_the_gpu_gives_it(tmp_path):
    idle = measured_on(tmp_path / "idle", L4, "l4", None)  # a whole L4 reports its utilisation
    assert any("GPU utilisation over the window is 0 or empty in 2 row(s)" in p for p in gpucheck.problems(idle))
    unflopped = measured_on(tmp_path / "noflops", L4, "l4", 85.0, gflops=None)  # the sheet has bfloat16
    assert any("(or missing) in 1 point(s)" in p for p in gpucheck.problems(unflopped))
    slow = measured_on(tmp_path / "slow", L4, "l4", 85.0, gflops=0.5)  # 0.5 TFLOP/s of 121: 0.4%
    assert any("datasheet MFU of model-alone points outside 2%-80%" in p for p in gpucheck.problems(slow))


def test_the_report_names_the_missing_datasheet_of_a_gpu_without_one(tmp_path):
    text = (measured_on(tmp_path / "a6000", "NVIDIA RTX A6000", "a6000", 90.0) / "report.md").read_text()
    assert "No datasheet for `a6000` (bench/results/profiles/a6000.toml)" in text
    assert "No datasheet" not in (measured_on(tmp_path / "l4", L4, "l4", 85.0) / "report.md").read_text()
