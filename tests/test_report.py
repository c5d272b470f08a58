from bench.plan.knobs import RunSpec
from bench.results.record import RunRecord
from tests.conftest import render_rows
from tests.tables import section, table, tables

ENV_NO_GPU = {
    "gpus": [],
    "gpu_note": "NVML unavailable: NVMLError_LibraryNotFound",
    "cpu": "Test CPU",
    "cpu_threads": 2,
    "ram_gb": 24,
    "python": "3.11",
    "tensorflow": "2.x",
    "keras": "3.x",
}


def row(status="ok", total=10.0, img_s=50.0, **knobs):
    spec = RunSpec(backbone="tiny", input_size=32, **knobs)
    fields = (
        dict(
            total_s=total,
            train_img_s=img_s,
            train_steps=3,
            val_steps=1,
            cpu_util_mean=40.0,
            cpu_util_p90=60.0,
            loader="x",
        )
        if status == "ok"
        else {"error": "Boom: it broke"}
    )
    return RunRecord.for_spec(spec, status=status, **fields).to_dict()


def test_tables_in_the_seeds_shape():
    rows = [
        row(batch=8, workers=1, img_s=40.0),
        row(batch=8, workers=4, img_s=80.0, total=5.0),
        row(batch=16, workers=1),
        row(batch=16, workers=4, status="oom"),
    ]
    text = render_rows(rows, ENV_NO_GPU, {"preset": "t", "gpu": "cpu"})
    timings = tables(section(text, "## tiny at 32x32"))[0]
    assert timings == [
        {
            "batch (train/val steps)": "16 (3/1 steps)",
            "keras w1 threads q10": "10.0 s · 50.0 img/s",
            "keras w4 threads q10": "**oom**",
        },
        {
            "batch (train/val steps)": "8 (3/1 steps)",
            "keras w1 threads q10": "10.0 s · 40.0 img/s",
            "keras w4 threads q10": "5.0 s · 80.0 img/s",
        },
    ]
    assert "**keras w4 threads q10**, batch 8" in section(text, "## Fastest")
    assert table(text, "## Failed runs") == [
        {"run": "keras w4 threads q10 b16 tiny r0", "status": "oom", "error": "Boom: it broke"}
    ]
    assert "## Skipped runs" not in text


def test_skipped_runs_are_said_once_a_reason_and_no_heading_stands_empty():
    skipped = [
        RunRecord.for_spec(
            RunSpec(backbone="tiny", input_size=32, batch=b), status="skipped", error="no DALI plugin"
        ).to_dict()
        for b in (4, 8)
    ]
    broken = RunRecord.for_spec(
        RunSpec(backbone="tiny", input_size=32, batch=16), status="error", error="Boom:\n  it"
    ).to_dict()
    text = render_rows([row(batch=2), *skipped], ENV_NO_GPU, {})
    assert "## Failed runs" not in text
    assert "- keras w4 threads q10 b4 tiny r0, keras w4 threads q10 b8 tiny r0: no DALI plugin" in text.splitlines()
    text = render_rows([row(batch=2), broken], ENV_NO_GPU, {})
    assert table(text, "## Failed runs")[0]["error"] == "Boom: it" and "## Skipped runs" not in text
    for heading in [line for line in text.splitlines() if line.startswith("## ")]:
        assert section(text, heading).strip(), f"{heading} stands empty"
    assert "- GPUs: none; the GPU columns are empty (NVML unavailable: NVMLError_LibraryNotFound)" in text.splitlines()


def test_repeats_are_summarised_by_their_median():
    rows = [row(batch=8, img_s=v, total=t, repeat=r) for r, (v, t) in enumerate([(10, 3), (30, 1), (20, 2)])]
    text = render_rows(rows, ENV_NO_GPU, {})
    timings = tables(section(text, "## tiny at 32x32"))[0]
    assert [r["keras w4 threads q10"] for r in timings] == ["2.0 s · 20.0 img/s ±50%"]  # half the range, 10 to 30


def test_varying_backbones_get_a_table_each():
    rows = [
        row(batch=8),
        RunRecord.for_spec(
            RunSpec(backbone="vgg16", input_size=32, batch=8), status="ok", total_s=1.0, train_img_s=2.0
        ).to_dict(),
    ]
    text = render_rows(rows, ENV_NO_GPU, {})
    assert "## tiny at 32x32" in text and "## vgg16 at 32x32" in text


def test_a_sweep_over_backends_gets_a_table_each_and_a_comparison():
    rows = [
        row(batch=8, img_s=40.0, backend="tensorflow"),
        row(batch=8, img_s=60.0, backend="jax"),
        row(batch=8, img_s=50.0, backend="torch"),
        row(batch=16, img_s=70.0, backend="jax"),
    ]
    text = render_rows(rows, {**ENV_NO_GPU, "jax": "0.10", "torch": "2.13"}, {})
    assert "## tiny at 32x32 on tensorflow" in text and "## tiny at 32x32 on jax" in text
    compared = table(text, "## Backends")
    assert len(compared) == 1  # batch 16 ran on jax alone: nothing to compare
    assert list(compared[0].values()) == ["tiny 32px", "keras w4 threads q10 b8", "40.0", "60.0", "50.0", "jax"]
    assert "TensorFlow 2.x, JAX 0.10, PyTorch 2.13" in text
    assert "## Backends" not in render_rows(rows[:1], ENV_NO_GPU, {})


def test_a_failed_peak_probe_says_why_in_the_report():
    rows = [
        RunRecord.for_spec(
            RunSpec(backbone="tiny", batch=8, pipeline="synthetic"),
            status="ok",
            total_s=1.0,
            train_img_s=10.0,
            window_s=3.0,
            data_wait_frac=0.0,
        ).to_dict()
    ]
    sweep = {"peak_tflops": {"jax": {"float32": None}}, "peak_errors": {"jax": {"float32": "RuntimeError: no device"}}}
    text = render_rows(rows, ENV_NO_GPU, sweep)
    assert "The peak probe failed on jax in float32, so MFU is empty there: RuntimeError: no device" in text


def test_a_mig_slice_is_named_and_its_empty_utilisation_explained(tmp_path):
    from tests.conftest import CPU_ENV, results

    folder = results(tmp_path / "mig", {1: [100.0, 101.0]}, env=CPU_ENV, label="h100-mig-1g.10gb")
    text = (folder / "report.md").read_text()
    assert "`h100-mig-1g.10gb` is a MIG slice: NVML reports no GPU utilisation for it" in text
    assert "| MFU (datasheet)" not in text  # no datasheet for a slice: no figure against the whole card's peak


def test_a_rerun_supersedes_the_failed_points_and_their_ceilings_of_an_earlier_plan(tmp_path):
    """A point at 64 px failed and the user swept 80 px instead: the report of the folder is the
    80 px sweep's, and says what it left out; a folder whose sweep.json plans nothing is whole."""
    import json

    import pandas as pd

    from bench.output import report
    from bench.plan.grid import model_ceiling, pipeline_ceiling
    from bench.results.store import ResultStore

    def ok(spec):
        return RunRecord.for_spec(
            spec, status="ok", total_s=5.0, train_img_s=90.0, train_steps=3, val_steps=1
        ).to_dict()

    old, new = (RunSpec(backbone="tiny", input_size=size, batch=8) for size in (64, 80))
    earlier = RunSpec(backbone="tiny", input_size=64, batch=4)  # an earlier sweep's point that ran: it stays
    store = ResultStore(tmp_path / "r").create()
    store.append(RunRecord.for_spec(old, status="error", error="ValueError: 64 px is too small").to_dict())
    for spec in (pipeline_ceiling(old), model_ceiling(old), earlier, model_ceiling(earlier), new, model_ceiling(new)):
        store.append(ok(spec))
    (tmp_path / "r" / "env.json").write_text(json.dumps(ENV_NO_GPU))
    planned = sorted(s.point_id for s in (new, pipeline_ceiling(new), model_ceiling(new)))
    (tmp_path / "r" / "sweep.json").write_text(json.dumps({"preset": "t", "gpu": "cpu", "planned": planned}))
    text = report.write(tmp_path / "r", plots=False).read_text()
    assert "64 px is too small" not in text and "b8 tiny" not in text
    assert "- 3 points an earlier sweep planned, that never ran or bound no point now" in text  # and its ceilings
    points = pd.read_csv(tmp_path / "r" / "points.csv")
    assert len(points) == 7  # points.csv keeps every point
    (tmp_path / "r" / "sweep.json").write_text(json.dumps({"preset": "t", "gpu": "cpu"}))
    assert "64 px is too small" in report.write(tmp_path / "r", plots=False).read_text()
