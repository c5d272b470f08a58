"""Figures that were wrong on several devices, hosts or frozen layers, on constructed rows."""

import json

import pandas as pd
import pytest

from bench.analyse import points
from bench.analyse.best import best_per_machine
from bench.output import machines
from bench.plan.knobs import RunSpec
from bench.results.record import RunRecord
from bench.results.store import ResultStore
from bench.run.processes import every_host_cpu, every_host_energy


def row(spec, img_s, **fields):
    fields = {
        "train_images_per_epoch": 100,
        "train_steps": 30,
        "val_steps": 1,
        "window_s": 200 / img_s,
        "window_steps": 60,
        "cpu_util_mean": 1,
        "cpu_util_p90": 1,
    } | fields
    return RunRecord.for_spec(spec, status="ok", train_img_s=img_s, total_s=10.0, epochs_timed=3, **fields).to_dict()


def test_mfu_is_per_device_over_gpus_and_hosts():
    """1.9x the images/s on 2 GPUs or 2 hosts is 0.95 of each device's share, not 1.9x the MFU."""
    one = RunSpec(backbone="tiny", input_size=16, batch=8, backend="jax")
    specs = [one, RunSpec(**{**one.__dict__, "gpus": 2}), RunSpec(**{**one.__dict__, "hosts": 2})]
    rows = [
        row(s, rate, train_gflops_per_image=2.0, matmul_precision="float32")
        for s, rate in zip(specs, (100.0, 190.0, 190.0))
    ]
    table = points.table(rows, {}, {"peak_tflops": {"float32": 0.5}, "gpu": "h200"}).set_index("point_id")
    mfu = [table.loc[s.point_id, "mfu"] for s in specs]
    assert mfu == pytest.approx([0.4, 0.38, 0.38])
    assert list(table.loc[[s.point_id for s in specs], "device_count"]) == [1, 2, 2]
    datasheet = [table.loc[s.point_id, "mfu_datasheet"] for s in specs]  # h200 float32: 67 TFLOP/s per GPU
    assert datasheet == pytest.approx([0.2 / 67, 0.38 / 2 / 67, 0.38 / 2 / 67])


def test_images_per_joule_over_hosts_divides_by_every_process_energy():
    """Process 0's record holds the run's images but only its own GPUs' energy."""
    records = [
        {"window_images": 1000, "gpu_energy_j": 100.0, "run_gpu_energy_j": 300.0, "img_per_joule": 10.0},
        {"window_images": 1000, "gpu_energy_j": 150.0, "run_gpu_energy_j": 400.0, "img_per_joule": 1000 / 150},
    ]
    assert every_host_energy(records) == {"gpu_energy_j": 250.0, "run_gpu_energy_j": 700.0, "img_per_joule": 4.0}
    records[1]["gpu_energy_j"] = None  # a process without a counter: no figure rather than a wrong one
    assert every_host_energy(records)["img_per_joule"] is None


def test_other_work_leaves_out_the_runs_own_processes_on_every_host():
    """hosts=2 on one machine: process 1 is the run's own. Its CPU joins process 0's, so a machine
    busy with the run alone shows no other work."""
    from bench.analyse.points import table
    from bench.plan.knobs import RunSpec
    from bench.results.record import RunRecord

    hosts = [{"proc_cpu_pct_mean": 95.0}, {"proc_cpu_pct_mean": 90.0}]
    assert every_host_cpu(hosts) == 185.0 and every_host_cpu([{}, {"proc_cpu_pct_mean": 1.0}]) is None
    row = RunRecord.for_spec(
        RunSpec(backbone="tiny", hosts=2),
        status="ok",
        train_img_s=100.0,
        window_s=5.0,
        cpu_util_mean=95.0,
        proc_cpu_pct_mean=every_host_cpu(hosts),
    ).to_dict()
    assert table([row], {"cpu_threads": 2}, {}).others_cpu_pct[0] == pytest.approx(2.5)


def folder(path, specs_rates, **fields):
    store = ResultStore(path).create()
    for spec, rate in specs_rates:
        store.append(row(spec, rate, **fields))
    (path / "env.json").write_text(json.dumps({"cpu": "Test CPU", "cpu_threads": 2, "gpus": []}))
    (path / "sweep.json").write_text(json.dumps({"gpu": "cpu", "preset": "t"}))
    points.write_csv(path)
    return path


def test_machines_fallback_energy_counts_every_gpu_and_cores_say_they_are_the_total(tmp_path):
    """No energy counter: the sampled power is one GPU's mean, so 2 GPUs draw twice it."""
    spec = RunSpec(backbone="tiny", input_size=16, batch=8, gpus=2)
    best = best_per_machine([folder(tmp_path / "a", [(spec, 200.0)], gpu_power_w_mean=100.0)])
    assert best.loc[0, "img_per_joule"] == pytest.approx(1.0)  # 200 images/s over 2 x 100 W
    assert machines.COLUMNS["cores_to_feed"] == "CPU cores to keep it fed (all its GPUs)"
    assert not any("per GPU" in c for c in machines.COLUMNS.values())


def test_backbone_null_survives_the_points_csv_round_trip(tmp_path):
    """The loaders preset's points are all `null` (the pipeline's ceiling): the machines report
    must keep them, and compare must not label them NaN."""
    specs = [(RunSpec(backbone="null", input_size=16, batch=8, workers=w), 100.0 * w) for w in (1, 2)]
    path = folder(tmp_path / "loaders", specs)
    read = points.read(path)
    assert list(read.backbone) == ["null", "null"]
    best = best_per_machine([path])
    assert len(best) == 1 and (best.loc[0, "backbone"], best.loc[0, "input_size"]) == ("null", 16)
    from bench.analyse import regressions

    result = regressions.compare(*[regressions.load(path)] * 2)
    assert list(result.table.backbone) == ["null", "null"]


@pytest.mark.slow
def test_decode_rate_reads_into_the_runs_transfer_type(monkeypatch):
    """uint8 runs decode to uint8 pixels; timing a float32 conversion they never make read slow."""
    import pipelines.reader
    from bench.run.worker import decode_rate

    asked = []
    monkeypatch.setattr(
        pipelines.reader, "load_image", lambda path, size, interpolation, transfer="float32": asked.append(transfer)
    )
    index = type("Index", (), {"files": {"train": ["a.jpg"]}})()
    decode_rate(index, RunSpec(backbone="tiny", input_size=16, batch=8, transfer="uint8"), seconds=0)
    assert set(asked) == {"uint8"}


def test_a_cached_pipeline_is_not_held_against_the_decode_ceiling():
    point = RunSpec(backbone="tiny", input_size=16, batch=8, workers=1, cache=True)
    from bench.plan.grid import model_ceiling, pipeline_ceiling

    rows = [
        row(point, 900.0),
        row(pipeline_ceiling(point), 1000.0, decode_img_s_core=100.0),
        row(model_ceiling(point), 2000.0),
    ]
    table = points.table(rows, {"cpu_threads": 4, "cpu_cores": 2}, {}).set_index("point_id")
    assert table.loc[point.point_id, "decode_ceiling_img_s"] == 200.0  # physical cores, not threads
    assert pd.isna(table.loc[point.point_id, "pipeline_efficiency"])  # 1000 / 200 would read 500%


def test_scaling_carries_its_range_and_the_noise_rule_against_perfect():
    from tests.conftest import render_rows

    rows = [
        row(RunSpec(backbone="tiny", input_size=16, batch=8, gpus=g, repeat=i), r, window_s=w, devices=f"{g} x CPU")
        for g, rates in ((1, [95.0, 105.0]), (2, [180.0, 200.0]))
        for i, r in enumerate(rates)
        for w in [0.5]
    ]
    text = render_rows(rows, {}, {})
    section = text[text.index("## Scaling over devices") :].split("\n## ")[0]
    header, _, cells = [row for row in section.splitlines() if row.startswith("|")][:3]
    parsed = dict(
        zip([c.strip() for c in header.strip("|").split("|")], [c.strip() for c in cells.strip("|").split("|")])
    )
    assert parsed["scaling"] == "0.95" and parsed["over the repeats"] == "0.86 to 1.05"
    assert parsed["against perfect"] == "within the noise"
