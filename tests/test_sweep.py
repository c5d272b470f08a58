"""End to end, as a user runs it: the CLI in its own process, each point in a worker process."""

import json
import os
import shutil

import pandas as pd
import pytest

from bench.plan.grid import installed
from bench.results.record import COLUMNS, SCHEMA
from bench.results.store import ResultStore
from pipelines.dataset import make_synthetic
from pipelines.registry import PIPELINES
from tests.conftest import SPAWNED, gpubench, killed_and_resumed
from tests.tables import table, tables

DALI_TF_PLUGIN, DALI_NEEDS_TF_PLUGIN = PIPELINES["dali"].plugins["tensorflow"]

TINY = ["--set", "backbone=tiny", "--set", "input_size=16", "--set", "epochs=2"]
# For the tests of a sweep's mechanics rather than its timing: the epochs as asked, one pass each.
AS_ASKED = ["--set", "window=epochs"]


@pytest.fixture(scope="module")
def broken_tree(tmp_path_factory):
    """A small tree with a zero-byte file and a truncated JPEG among the images, and a notebook's
    checkpoint folder and Windows' thumbnail cache beside them."""
    root = make_synthetic(
        tmp_path_factory.mktemp("data") / "broken", train=12, val=4, classes=2, image_size=(64, 48), seed=2
    )
    (root / "train/.ipynb_checkpoints").mkdir()
    (root / "train/class1/Thumbs.db").write_bytes(b"\x00")
    (root / "train/class0/zero.jpg").write_bytes(b"")
    good = (root / "train/class1/img_00001.jpg").read_bytes()
    (root / "train/class1/cut.jpg").write_bytes(good[: len(good) // 3])
    return root


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, broken_tree):
    """The smoke preset over the broken tree, run once for the tests that read its results;
    without its ceilings, which test_bottleneck measures for real."""
    cwd = tmp_path_factory.mktemp("smoke")
    result = gpubench(
        "sweep",
        "--preset",
        "smoke",
        "--data",
        broken_tree,
        "--out",
        "out",
        "--no-ceilings",
        "--set",
        "batch=8",
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "out", result


@pytest.mark.slow
def test_smoke_sweep_writes_every_row_and_column(smoke):
    out, _ = smoke
    every = pd.read_csv(out / "runs.csv")
    assert list(every.columns) == COLUMNS
    loaders = {"keras", "tfdata"} | {
        p for p, module in (("torch", "torch"), ("dali", "nvidia.dali")) if installed(module)
    }
    dali_on_tf = every.pipeline == "dali"  # through DALI's TF plugin, or a skipped row that names it
    if installed("nvidia.dali") and not installed(DALI_TF_PLUGIN):
        assert set(every[dali_on_tf].status) == {"skipped"} and (every[dali_on_tf].error == DALI_NEEDS_TF_PLUGIN).all()
        every, loaders = every[~dali_on_tf], loaders - {"dali"}
    assert set(every.status) == {"ok"}
    runs = every[every.role == "point"]
    assert len(runs) == len(every) == len(loaders) + 1
    assert set(runs.pipeline) == loaders | {"synthetic"} and set(runs.batch) == {8}
    assert (runs.schema == SCHEMA).all() and runs.run_id.is_unique
    assert (runs.train_img_s > 0).all() and (runs.total_s > 0).all()
    assert (runs.step_ms_p50[runs.pipeline != "synthetic"] > 0).all()
    # window=auto: 2 epochs of 12 images lengthened to 50 steps each; a pipeline's window opens after
    # 1 + depth (2 workers + a queue of 4) + 5 steps, the model alone's after the first epoch
    assert (runs.train_steps == 50).all() and (runs.train_images_per_epoch == 50 * runs.batch).all()
    assert runs.set_index("pipeline").warmup_steps.to_dict() == {
        p: 50 if p == "synthetic" else 12 for p in runs.pipeline
    }
    assert (runs.window_steps == 100 - runs.warmup_steps).all() and (
        runs.window_images == runs.window_steps * runs.batch
    ).all()
    assert (runs.window_s > 0).all() and (runs.train_img_s == runs.window_images / runs.window_s).all()
    assert (0 < runs.startup_s).all() and (runs.startup_s < runs.wall_s).all() and (runs.warmup_s > 0).all()
    assert (runs.run_cpu_util_mean >= 0).all() and (runs.run_rss_peak_mb > 50).all()
    assert set(runs.matmul_precision) == {"float32"}
    for run_id in every.run_id:
        samples = pd.read_csv(out / "samples" / f"{run_id}.csv")
        assert len(samples) >= 1 and {"t_s", "cpu_util", "proc_cpu_pct", "rss_mb", "phase"} <= set(samples.columns)
        assert set(samples.phase) <= {"warmup", "window", "between", "after"}


@pytest.mark.slow
def test_unreadable_images_and_hidden_entries_are_passed_over_with_one_warning_each(smoke):
    out, result = smoke
    assert result.stderr.count("unreadable images skipped") == 1
    assert "warning: 2 unreadable images skipped" in result.stderr
    assert result.stderr.count("passed over") == 1
    assert (
        "warning: 2 hidden or system files and folders passed over, neither classes nor images: "
        ".ipynb_checkpoints, Thumbs.db"
    ) in result.stderr
    assert "2 hidden or system files and folders passed over" in (out / "report.md").read_text()
    ran = pd.read_csv(out / "runs.csv").query("status == 'ok'")
    assert len(ran) >= 4 and (ran.images_skipped == 2).all()


@pytest.mark.slow
def test_gpu_columns_are_filled_or_say_why_not(smoke):
    out, _ = smoke
    env = json.loads((out / "env.json").read_text())
    runs = pd.read_csv(out / "runs.csv").query("status == 'ok'")
    report = (out / "report.md").read_text()
    if env["gpu_count"] == 0:
        assert runs.gpu_util_mean.isna().all() and runs.gpu_mem_peak_mb.isna().all()
        assert runs.gpu_note.str.contains("NVML").all()
        assert "GPU columns are empty" in report
    else:
        assert runs.gpu_mem_peak_mb.notna().all()


@pytest.mark.slow
def test_report_has_the_seeds_tables(smoke, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(smoke[0], out)  # its own copy: the rebuilds below rewrite report.md, which other tests read
    report = (out / "report.md").read_text()
    timings = tables(report)[0]
    columns = list(timings[0])
    assert columns[0] == "batch (train/val steps)" and {"keras w2 threads q4", "tfdata w2 q4"} <= set(columns)
    assert any(column.startswith("synthetic") for column in columns)
    assert [row["batch (train/val steps)"] for row in timings] == ["8 (50/1 steps)"]
    assert "## Where the sweep's time went" in report and "were measured windows" in report
    assert "## Fastest" in report and "CPU and GPU utilisation" in report
    os.remove(out / "report.md")
    rebuilt = gpubench("report", out, cwd=out)
    assert rebuilt.returncode == 0 and (out / "report.md").read_text() == report
    assert "![CPU and GPU utilisation over" in report and (out / "utilisation.png").stat().st_size > 5000
    chosen = pd.read_csv(out / "runs.csv").run_id.iloc[0]
    assert gpubench("report", out, "--run", chosen, cwd=out).returncode == 0
    assert f"({chosen})" in (out / "report.md").read_text()
    bad = gpubench("report", out, "--run", "nope", cwd=out)
    assert bad.returncode == 2 and "no such run" in bad.stderr


@pytest.mark.slow
def test_a_second_sweep_skips_what_is_done(smoke, broken_tree, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(smoke[0], out)  # its own copy: a second sweep rewrites env.json, sweep.json and the report
    again = gpubench(
        "sweep",
        "--preset",
        "smoke",
        "--data",
        broken_tree,
        "--out",
        out,
        "--no-ceilings",
        "--set",
        "batch=8",
        cwd=out.parent,
    )
    assert again.returncode == 0
    runs = len(ResultStore(out).records())
    assert f"{runs} of {runs} runs already" in again.stderr
    assert len(ResultStore(out).records()) == runs


@pytest.mark.slow
def test_a_killed_sweep_resumes_without_losing_or_repeating_rows(tmp_path, tiny_tree):
    finished, resumed = killed_and_resumed(
        [
            "sweep",
            "--preset",
            "smoke",
            "--data",
            tiny_tree,
            "--out",
            "out",
            "--no-ceilings",
            "--set",
            "pipeline=keras",
            "--set",
            "batch=2,3,4,6",
            *AS_ASKED,
        ],
        tmp_path,
    )
    assert 1 <= len(finished) < 4
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    store = ResultStore(tmp_path / "out")
    rows = store.records()
    assert len(rows) == 4 and len({r["run_id"] for r in rows}) == 4
    assert finished <= {r["run_id"] for r in rows}
    assert len(pd.read_csv(tmp_path / "out" / "runs.csv")) == 4


@pytest.mark.slow
def test_a_failing_point_is_a_row_and_the_others_run(tmp_path, tiny_tree):
    # 400,000 images of 512x512 is a 1.2 TiB batch: the worker runs out of memory at once
    result = gpubench(
        "sweep",
        "--preset",
        "smoke",
        "--data",
        tiny_tree,
        "--out",
        "out",
        "--no-ceilings",
        "--set",
        "pipeline=synthetic",
        "--set",
        "input_size=512",
        "--set",
        "batch=400000,4",
        *AS_ASKED,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = pd.read_csv(tmp_path / "out" / "runs.csv").set_index("batch")
    assert runs.loc[4, "status"] == "ok"
    assert runs.loc[400000, "status"] == "oom"
    assert "MemoryError" in runs.loc[400000, "error"] and "TiB" in runs.loc[400000, "error"]
    log = (tmp_path / "out" / "logs" / f"{runs.loc[400000, 'run_id']}.log").read_text()
    assert "Traceback (most recent call last)" in log and "numpy" in log  # the whole of it, for whoever mends it
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Failed runs" in report and "**oom**" in report


@pytest.mark.slow
def test_a_run_past_its_timeout_is_a_timeout_row(tmp_path, tiny_tree):
    result = gpubench(
        "sweep",
        "--preset",
        "smoke",
        "--data",
        tiny_tree,
        "--out",
        "out",
        "--timeout",
        "0.5",
        "--no-ceilings",
        "--set",
        "pipeline=synthetic",
        "--set",
        "batch=4",
        cwd=tmp_path,
        env=SPAWNED,
    )
    assert result.returncode == 1 and "timeout" in result.stderr  # a failed run: the sweep says so
    row = ResultStore(tmp_path / "out").records()[0]
    assert row["status"] == "timeout" and "0.5 s timeout" in row["error"]


def test_two_sweeps_into_one_folder_are_refused(tmp_path, tiny_tree):
    store = ResultStore(tmp_path / "out").create()
    with store.locked():
        result = gpubench("sweep", "--preset", "smoke", "--data", tiny_tree, "--out", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert "another sweep is writing to" in result.stderr
    assert store.records() == []


@pytest.mark.slow
def test_run_prints_one_record(tmp_path, tiny_tree):
    result = gpubench(
        "run",
        "--data",
        tiny_tree,
        "--out",
        "out",
        *TINY,
        *AS_ASKED,
        "--set",
        "pipeline=tfdata",
        "--set",
        "batch=4",
        "--set",
        "workers=2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout)
    assert record["status"] == "ok" and record["pipeline"] == "tfdata" and record["batch"] == 4
    assert record["use_multiprocessing"] is None and "parallel=2" in record["loader"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "nowhere"], "data directory nowhere does not exist"),
        (["--gpu", "../up"], "plain name"),
        (["--set", "backbone=alexnet"], "unknown backbone 'alexnet'"),
        (["--set", "batch=0"], "batch=0: must be at least 1"),
        (["--set", "workers=-1"], "workers=-1"),
        (["--preset", "nope"], "no preset 'nope'"),
        (["--repeat", "0"], "--repeat 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, args, message):
    result = gpubench("sweep", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_a_class_folder_without_images_is_refused_before_any_run(tmp_path):
    root = make_synthetic(tmp_path / "d", train=2, val=2, classes=2, image_size=(32, 32))
    for image in (root / "train/class1").iterdir():
        image.unlink()
    result = gpubench("sweep", "--preset", "smoke", "--data", root, cwd=tmp_path)
    assert result.returncode == 2 and "train/class1 has no images" in result.stderr


def test_dry_run_lists_the_grid_and_runs_nothing(tmp_path):
    result = gpubench("sweep", "--preset", "quick", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("60 runs at most: the repeats after the first only where a verdict")
    assert {
        "pipeline": "keras",
        "batch": "15",
        "workers": "1",
        "use_multiprocessing": "False",
        "repeat": "0",
        "train steps": "170",
    } in table(result.stdout)
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


@pytest.mark.slow
def test_two_devices_train_with_mirrored_strategy_on_logical_cpus(tmp_path, tiny_tree):
    result = gpubench(
        "sweep",
        "--preset",
        "smoke",
        "--data",
        tiny_tree,
        "--out",
        "out",
        "--set",
        "pipeline=keras",
        "--no-ceilings",
        "--set",
        "batch=4",
        "--set",
        "gpus=1,2",
        *AS_ASKED,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = pd.read_csv(tmp_path / "out" / "runs.csv").set_index("gpus")
    assert set(runs.status) == {"ok"}
    assert runs.loc[1, "devices"] == "1 x CPU" and runs.loc[2, "devices"] == "2 x CPU (logical)"
    assert "## Scaling over devices" in (tmp_path / "out" / "report.md").read_text()


def test_more_gpus_than_present_is_a_skipped_row(tmp_path, tiny_tree):
    from bench.plan.knobs import RunSpec
    from bench.run import runner

    store = ResultStore(tmp_path / "out").create()
    rows = runner.sweep([RunSpec(backbone="tiny", gpus=4)], tmp_path / "unused.json", store, 60, gpus_present=1)
    assert rows[0]["status"] == "skipped" and rows[0]["error"] == "needs 4 GPUs, 1 present"
    assert store.records() == rows


def test_a_batch_that_does_not_split_over_the_devices_is_skipped(tmp_path):
    from bench.plan.knobs import RunSpec
    from bench.run import runner
    from pipelines.dataset import scan

    odd = make_synthetic(tmp_path / "odd", train=11, val=4, classes=2, image_size=(32, 32))
    scan(odd).save(tmp_path / "index.json")
    store = ResultStore(tmp_path / "out").create()
    specs = [RunSpec(backbone="tiny", gpus=2, batch=b, window="epochs") for b in (3, 8)]  # one pass an epoch
    rows = runner.sweep(specs, tmp_path / "index.json", store, 60)
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert rows[0]["error"].startswith("batch 3 (train ends with 2) does not split evenly over 2 devices")
    assert rows[1]["error"].startswith("batch 8 (train ends with 3)")  # 11 images: 8, then 3


def test_gpu_quick_fits_eight_minutes_on_the_lent_gpu_machines(tmp_path, without_tensorflow):
    """Those machines have jax and torch but no TensorFlow. 8 minutes is 19 runs at 25 s each:
    the H200 measured 10 s of process start and imports a run, and the compilation cache takes
    most of the 12-26 s first epoch off every run after the first of a model; the rest is each
    window's steps, at most 200 of 128 images but the seed's 500 of 6."""
    result = gpubench("sweep", "--preset", "gpu-quick", "--dry-run", cwd=tmp_path, env=without_tensorflow)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("10 runs;") and "and 9 ceiling runs" in result.stdout
    assert "left out of the grid: pipeline tfdata needs tensorflow" in result.stderr
    rows = [row for row in table(result.stdout) if row["backend"] in ("jax", "torch")]
    steps = [int(row["train steps"]) for row in rows]
    assert len(steps) == 10 and sorted(steps)[-2] <= 200
    assert any(row["pipeline"] == "dali" for row in rows)
    assert any(row["transfer"] == "uint8" and row["cache"] == "True" for row in rows)
    assert any(row["data_format"] == "channels_first" for row in rows)


def test_the_seed_preset_is_the_seeds_grid(tmp_path):
    result = gpubench("sweep", "--preset", "seed", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("144 runs;")  # keras 4x2x2x2 and tfdata 4x2x2 points, 3 repeats
    assert "backbone=vgg16" in result.stdout and "epochs=20" in result.stdout and "workers=32" in result.stdout


@pytest.mark.slow
def test_repeats_give_a_median_and_a_spread(tmp_path, tiny_tree):
    result = gpubench(
        "sweep",
        "--preset",
        "smoke",
        "--data",
        tiny_tree,
        "--out",
        "out",
        "--repeat",
        "2",
        "--no-ceilings",
        "--set",
        "pipeline=synthetic",
        "--set",
        "batch=4",
        *AS_ASKED,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert sorted(runs.repeat) == [0, 1] and runs.point_id.nunique() == 1
    points = pd.read_csv(tmp_path / "out" / "points.csv")
    assert len(points) == 1 and points.repeats_ok[0] == 2
    assert points.train_img_s[0] == pytest.approx(runs.train_img_s.median())
    assert points.spread[0] == pytest.approx(
        (runs.train_img_s.max() - runs.train_img_s.min()) / runs.train_img_s.median()
    )
    assert "img/s ±" in (tmp_path / "out" / "report.md").read_text()
