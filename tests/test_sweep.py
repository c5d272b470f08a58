"""A sweep as a user runs it. What a sweep decides (what it skips, a failed point's row, repeats
to a median, the report, warnings, refusals, bad input, dry runs) is checked in this process
against stand-in runs (tests/conftest.py's StandIn): no worker starts. Worker processes start
only for what only they show, each marked slow: the smoke sweep (TensorFlow, every installed
loader; its tests share it on one xdist worker), a killed sweep resumed, a timeout, a worker out
of memory, two logical devices."""

import json
import os
import shlex
import shutil
from pathlib import Path

import pandas as pd
import psutil
import pytest

from bench.plan.grid import installed, one_point
from bench.results.record import COLUMNS, SCHEMA
from bench.results.store import ResultStore
from bench.run import processes
from bench.run.launcher import FORK_ENV
from bench.run.settings import Options
from pipelines.dataset import make_synthetic, scan
from pipelines.registry import PIPELINES
from tests.conftest import SPAWNED, assert_forked_with_startup_parts, gpubench, killed, session_of, sets, smoke_sweep
from tests.tables import table, tables

DALI_TF_PLUGIN, DALI_NEEDS_TF_PLUGIN = PIPELINES["dali"].plugins["tensorflow"]


TINY = sets("backbone=tiny", "input_size=16", "epochs=2")
# For the tests of a sweep's mechanics rather than its timing: the epochs as asked, one pass each.
AS_ASKED = sets("window=epochs")


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def smoke(tmp_path_factory, broken_tree):
    """The smoke preset over the broken tree, run once for the tests that read its results;
    without its ceilings, which test_bottleneck measures for real."""
    cwd = tmp_path_factory.mktemp("smoke")
    result = gpubench(*smoke_sweep(broken_tree, *sets("batch=8")), cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "out", result


@pytest.mark.xdist_group("smoke")
def test_the_tests_of_a_shared_sweep_run_on_one_worker(request):
    """Under `make test` (xdist's loadgroup) a group's tests carry its name, which keeps them on one
    worker and the smoke sweep run once; a pytest that drops it (9.2 with xdist 3.8) spreads them."""
    if request.config.getoption("loadgroup", False):
        assert request.node.nodeid.endswith("@smoke"), request.node.nodeid


@pytest.mark.slow
@pytest.mark.xdist_group("smoke")
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
    assert_forked_with_startup_parts(runs)  # TensorFlow's runs, from their launcher
    assert (runs.run_cpu_util_mean >= 0).all() and (runs.run_rss_peak_mb > 50).all()
    assert set(runs.matmul_precision) == {"float32"}
    assert (runs.images_skipped == 2).all()  # the broken tree's two unreadable images, passed over
    assert (runs.devices == "1 x CPU").all()
    assert "parallel=2" in runs.set_index("pipeline").loader["tfdata"]
    for run_id in every.run_id:
        samples = pd.read_csv(out / "samples" / f"{run_id}.csv")
        assert len(samples) >= 1 and {"t_s", "cpu_util", "proc_cpu_pct", "rss_mb", "phase"} <= set(samples.columns)
        assert set(samples.phase) <= {"warmup", "window", "between", "after"}


def test_unreadable_images_and_hidden_entries_are_passed_over_with_one_warning_each(broken_tree, stand_in, cli):
    result = cli(*smoke_sweep(broken_tree, *sets("batch=8")))
    assert result.returncode == 0 and stand_in.started
    assert result.stderr.count("unreadable images skipped") == 1
    assert "warning: 2 unreadable images skipped" in result.stderr
    assert result.stderr.count("passed over") == 1
    assert (
        "warning: 2 hidden or system files and folders passed over, neither classes nor images: "
        ".ipynb_checkpoints, Thumbs.db"
    ) in result.stderr
    assert "2 hidden or system files and folders passed over" in (Path("out") / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.xdist_group("smoke")
def test_the_console_shows_gpubenchs_lines_only(smoke):
    # the launcher's server imports TensorFlow once for every run: its start-up lines go nowhere
    out, result = smoke
    assert f"{len(pd.read_csv(out / 'runs.csv'))} runs" in result.stderr.splitlines()  # the planner's count first
    foreign = ("cudart_stub", "oneDNN", "absl::InitializeLog", "I0000 ", "W0000 ", "E0000 ")
    assert not [line for line in result.stderr.splitlines() if any(f in line for f in foreign)], result.stderr


@pytest.mark.slow
@pytest.mark.xdist_group("smoke")
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
@pytest.mark.xdist_group("smoke")
def test_report_has_the_seeds_tables(smoke, tmp_path, cli):
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
    rebuilt = cli("report", out)
    assert rebuilt.returncode == 0 and (out / "report.md").read_text() == report
    assert "![CPU and GPU utilisation over" in report and (out / "utilisation.png").stat().st_size > 5000
    chosen = pd.read_csv(out / "runs.csv").run_id.iloc[0]
    assert cli("report", out, "--run", chosen).returncode == 0
    assert f"({chosen})" in (out / "report.md").read_text()
    bad = cli("report", out, "--run", "nope")
    assert bad.returncode == 2 and "no such run" in bad.stderr


def test_a_second_sweep_skips_what_is_done(tiny_tree, stand_in, cli):
    sweep = smoke_sweep(tiny_tree, *sets("batch=8"))
    assert cli(*sweep).returncode == 0
    runs = len(ResultStore("out").records())
    assert runs >= len(stand_in.started) >= 3  # keras, tfdata and synthetic at least; a skipped row runs nothing
    stand_in.started.clear()
    again = cli(*sweep)
    assert again.returncode == 0 and stand_in.started == []
    assert f"{runs} of {runs} runs already" in again.stderr
    assert len(ResultStore("out").records()) == runs
    assert json.loads(Path("out/sweep.json").read_text())["command"] == shlex.join(["gpubench", *map(str, sweep)])


@pytest.mark.slow
def test_a_killed_sweep_resumes_without_losing_or_repeating_rows(tmp_path, tiny_tree, stand_in, cli):
    """The kill is a real sweep's (SIGKILL, the lock dropped by the kernel); what the second sweep
    decides, this process's with stand-in runs."""
    args = smoke_sweep(tiny_tree, *sets("pipeline=keras", "batch=2,4"), *AS_ASKED)
    finished = killed(args, tmp_path)
    assert len(finished) == 1  # killed once its first row was written, seconds before the second
    # nothing of it left behind: the launcher's server and the run it forked end with the sweep
    left = [p for p in psutil.process_iter(["cwd"]) if p.info["cwd"] == str(tmp_path) and p.pid != os.getpid()]
    assert not psutil.wait_procs(left, timeout=60)[1]
    resumed = cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(stand_in.started) == 1 and stand_in.started[0].run_id not in finished
    rows = ResultStore(tmp_path / "out").records()
    assert len(rows) == 2 and len({r["run_id"] for r in rows}) == 2
    assert finished <= {r["run_id"] for r in rows}
    assert len(pd.read_csv(tmp_path / "out" / "runs.csv")) == 2


def test_a_failing_point_is_a_row_and_the_others_run(tiny_tree, stand_in, cli):
    stand_in.fails = lambda spec: ("oom", "MemoryError: Unable to allocate 1.2 TiB") if spec.batch > 4 else None
    result = cli(*smoke_sweep(tiny_tree, *sets("pipeline=synthetic", "batch=400000,4")))
    assert result.returncode == 0, result.stderr[-2000:]  # out of memory is a result, not a failure
    assert sorted(s.batch for s in stand_in.started) == [4, 400000]
    runs = pd.read_csv("out/runs.csv").set_index("batch")
    assert runs.loc[4, "status"] == "ok" and runs.loc[400000, "status"] == "oom"
    report = Path("out/report.md").read_text()
    assert "## Failed runs" in report and "**oom**" in report


@pytest.mark.slow
def test_a_worker_out_of_memory_is_an_oom_row_with_its_whole_traceback_in_the_log(tmp_path, tiny_tree):
    """400,000 images of 512x512 is a 1.2 TiB batch: the worker runs out of memory at once."""
    spec = one_point({"backbone": "tiny", "pipeline": "synthetic", "input_size": 512, "batch": 400000})
    scan(tiny_tree).save(tmp_path / "index.json")
    store = ResultStore(tmp_path / "out").create()
    row = processes.run_point(spec, tmp_path / "index.json", store, 120, given={"CUDA_VISIBLE_DEVICES": "-1"})
    assert row["status"] == "oom" and "MemoryError" in row["error"] and "TiB" in row["error"]
    assert row["forked"]  # from TensorFlow's launcher: its failure and its log its own
    log = (store.logs / f"{spec.run_id}.log").read_text()
    assert "Traceback (most recent call last)" in log and "numpy" in log  # the whole of it, for whoever mends it


@pytest.mark.slow
def test_a_run_past_its_timeout_is_a_timeout_row(tmp_path, tiny_tree, cli, no_figures, monkeypatch):
    monkeypatch.setenv(FORK_ENV, SPAWNED[FORK_ENV])
    result = cli(*smoke_sweep(tiny_tree, "--timeout", "0.5", *sets("pipeline=synthetic", "batch=4")))
    assert result.returncode == 1 and "timeout" in result.stderr  # a failed run: the sweep says so
    row = ResultStore(tmp_path / "out").records()[0]
    assert row["status"] == "timeout" and "0.5 s timeout" in row["error"]


def test_two_sweeps_into_one_folder_are_refused(tmp_path, tiny_tree, stand_in, cli):
    store = ResultStore(tmp_path / "out").create()
    with store.locked():
        result = cli("sweep", "--preset", "smoke", "--data", tiny_tree, "--out", "out")
    assert result.returncode == 2
    assert "another sweep is writing to" in result.stderr
    assert store.records() == [] and stand_in.started == []


def test_run_prints_one_record(tiny_tree, stand_in, cli):
    knobs = sets("pipeline=tfdata", "batch=4", "workers=2")
    result = cli("run", "--data", tiny_tree, "--out", "out", *TINY, *AS_ASKED, *knobs)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout)
    assert [s.run_id for s in stand_in.started] == [record["run_id"]]
    assert record["status"] == "ok" and record["pipeline"] == "tfdata" and record["batch"] == 4
    assert record["use_multiprocessing"] is None  # tfdata has no processes: the knob is blanked
    assert ResultStore("out").records() == [record]


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
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, args, message, stand_in, cli):
    result = cli("sweep", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists() and stand_in.started == []


def test_a_class_folder_without_images_is_refused_before_any_run(tmp_path, stand_in, cli):
    root = make_synthetic(tmp_path / "d", train=2, val=2, classes=2, image_size=(32, 32))
    for image in (root / "train/class1").iterdir():
        image.unlink()
    result = cli("sweep", "--preset", "smoke", "--data", root)
    assert result.returncode == 2 and "train/class1 has no images" in result.stderr and stand_in.started == []


def test_dry_run_lists_the_grid_and_runs_nothing(tmp_path, stand_in, cli):
    result = cli("sweep", "--preset", "quick", "--dry-run")
    assert result.returncode == 0
    assert result.stdout.startswith("26 to 156 runs: 26 in the first pass, then only where the noise asks")
    assert {
        "pipeline": "keras",
        "batch": "15",
        "workers": "1",
        "use_multiprocessing": "False",
        "repeat": "0",
        "train steps": "170",
    } in table(result.stdout)
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists() and stand_in.started == []


@pytest.mark.slow
def test_two_devices_train_with_mirrored_strategy_on_logical_cpus(tmp_path, tiny_tree, cli, no_figures):
    """Logical devices are made before TensorFlow's runtime starts: only a fresh worker shows it.
    One device is the smoke sweep's (1 x CPU); the report's scaling section, test_sections.py's."""
    result = cli(*smoke_sweep(tiny_tree, *sets("pipeline=keras", "batch=4", "gpus=2"), *AS_ASKED))
    assert result.returncode == 0, result.stderr[-2000:]
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert runs.status.tolist() == ["ok"] and runs.devices.tolist() == ["2 x CPU (logical)"]


def test_more_gpus_than_present_is_a_skipped_row(tmp_path, tiny_tree):
    from bench.plan.knobs import RunSpec
    from bench.run import runner

    store = ResultStore(tmp_path / "out").create()
    rows = runner.sweep([RunSpec(backbone="tiny", gpus=4)], session_of(store, gpus=1), Options(timeout_s=60))
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
    rows = runner.sweep(specs, session_of(store, tmp_path / "index.json"), Options(timeout_s=60))
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
    assert result.stdout.startswith("19 runs;") and "and 9 ceiling runs" in result.stdout
    assert "left out of the grid: pipeline tfdata needs tensorflow" in result.stderr
    rows = [row for row in table(result.stdout) if row["backend"] in ("jax", "torch")]
    steps = [int(row["train steps"]) for row in rows]
    assert len(steps) == 10 and sorted(steps)[-2] <= 200
    assert any(row["pipeline"] == "dali" for row in rows)
    assert any(row["transfer"] == "uint8" and row["cache"] == "True" for row in rows)
    assert any(row["data_format"] == "channels_first" for row in rows)


def test_the_seed_preset_is_the_seeds_grid(stand_in, cli):
    result = cli("sweep", "--preset", "seed", "--dry-run")
    assert result.returncode == 0
    # keras 4x2x2x2 and tfdata 4x2x2 points, 3 repeats: the first pass, then 96 ceilings and looks at most
    assert result.stdout.startswith("176 to 320 runs:") and "the grid's 144 runs" in result.stdout
    assert "backbone=vgg16" in result.stdout and "epochs=20" in result.stdout and "workers=32" in result.stdout


def test_repeats_give_a_median_and_a_spread(tiny_tree, stand_in, cli):
    stand_in.rate = lambda spec: 100.0 + 20 * spec.repeat
    result = cli(*smoke_sweep(tiny_tree, "--repeat", "2", *sets("pipeline=synthetic", "batch=4"), *AS_ASKED))
    assert result.returncode == 0, result.stderr[-2000:]
    runs = pd.read_csv("out/runs.csv")
    assert sorted(runs.repeat) == [0, 1] and runs.point_id.nunique() == 1
    points = pd.read_csv("out/points.csv")
    assert len(points) == 1 and points.repeats_ok[0] == 2
    assert points.train_img_s[0] == pytest.approx(110.0)  # the median of 100 and 120
    assert points.spread[0] == pytest.approx(20 / 110)
    assert "img/s ±" in Path("out/report.md").read_text()
