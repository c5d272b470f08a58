"""Failures stop early and say so (issue 25): a sweep with failed runs exits 1 and names its first
error; a user's function that fails is tried once; the ceilings of points that all failed are not
run; a rerun runs the failed runs again, and measures everything anew on changed data. The runs
are stand-ins (runner.run_point replaced): no worker starts."""

import pytest

from bench.plan.grid import ceiling_probes, expand
from bench.results.record import RunRecord
from bench.run import failures
from pipelines.dataset import DatasetIndex, make_synthetic

PRESET = (
    '[knobs]\nbackbone = "tiny"\ninput_size = 32\npipeline = ["keras", "examples.pipelines:failing"]\n'
    "batch = [4, 8]\nepochs = 2\n"
)
FAILING = "UserCodeError: examples.pipelines:failing raised RuntimeError: the data server is unreachable"


@pytest.fixture
def sweep(tmp_path, stand_in, cli):
    """Runs `gpubench sweep` on a tiny tree with stand-in runs; returns (exit status, stdout, stderr,
    the runs it started)."""
    (tmp_path / "mine.toml").write_text(PRESET)
    make_synthetic(tmp_path / "data", train=8, val=4, classes=2, image_size=(16, 12))
    fixed = tmp_path / "fixed"
    stand_in.fails = lambda spec: (
        ("error", FAILING) if spec.pipeline == "examples.pipelines:failing" and not fixed.exists() else None
    )

    def run():
        stand_in.started.clear()
        args = ["--gpu", "cpu", "--data", tmp_path / "data", "--out", tmp_path / "out"]
        done = cli("sweep", "--preset", "mine.toml", *args)
        return done.returncode, done.stdout, done.stderr, list(stand_in.started)

    return run


def test_a_failing_user_function_is_tried_once_the_sweep_exits_1_and_a_rerun_finishes_the_job(sweep, tmp_path):
    code, out, err, started = sweep()
    failing = [s for s in started if s.pipeline == "examples.pipelines:failing"]
    assert code == 1 and len(failing) == 1  # its ceiling at batch 4; its other 3 runs are not run
    assert len(started) == 7  # of 12: the model ceilings still bound the keras points
    last = out.strip().splitlines()[-1]
    # its other 3 runs, and the 2 model ceilings its batches shape: each would call it again
    assert last.startswith("first error (1 failed, 5 not run after it; see runs.csv): error in run ")
    assert "the data server is unreachable" in last and "run the same command again" in last

    (tmp_path / "fixed").touch()  # the user fixes their function
    code, out, err, started = sweep()
    assert code == 0 and len(started) == 6  # the failed run and the 5 not run after it
    assert "the 6 that failed before run again" in " ".join(err.split())  # rich wraps at 80 columns
    assert sweep()[3] == []  # done: nothing left to run


def test_changed_data_is_measured_anew_and_said_in_one_line(sweep, tmp_path):
    (tmp_path / "fixed").touch()
    assert sweep()[0] == 0
    (tmp_path / "data" / "train" / "class0" / "extra.png").write_bytes(
        (tmp_path / "data" / "train" / "class0").glob("*").__next__().read_bytes()
    )
    code, out, err, started = sweep()
    assert code == 0 and len(started) == 12
    assert [line for line in err.splitlines() if "the data changed" in line][0].endswith(
        f"measured anew on {tmp_path / 'data'}"
    )


def test_ceilings_run_beside_their_points_pass_by_pass_and_a_model_ceiling_not_when_its_points_all_failed():
    grid = expand({"backbone": ["tiny"], "pipeline": ["keras"], "batch": [4, 8], "input_size": [32]}, repeat=2)
    ordered = failures.in_order(ceiling_probes(grid), grid)
    one_pass = [
        ("keras", "null", 4),
        ("keras", "tiny", 4),
        ("synthetic", "tiny", 4),
        ("keras", "null", 8),
        ("keras", "tiny", 8),
        ("synthetic", "tiny", 8),
    ]
    assert [(s.pipeline, s.backbone, s.batch) for s in ordered] == one_pass * 2
    assert [s.repeat for s in ordered] == [0] * 6 + [1] * 6  # a point's repeats apart, its ceilings beside each
    after = failures.AfterFailures(ordered)
    for point in (ordered[1], ordered[7]):  # both repeats of the batch-4 point
        after.note(RunRecord.for_spec(point, status="timeout", error="no result within 60 s").to_dict())
    assert after.stopped(ordered[8]).startswith(
        f"{failures.AFTER_FAILURE}every run of the points this ceiling bounds failed (first: run {ordered[1].run_id})"
    )
    assert after.stopped(ordered[10]) is None and after.stopped(ordered[11]) is None


def test_a_decode_error_in_a_user_pipeline_points_to_the_unreadable_files_listed_at_the_start():
    spec = expand({"backbone": ["tiny"], "pipeline": ["examples.pipelines:tfdata_images"]})[0]
    row = RunRecord.for_spec(
        spec, status="error", error="InvalidArgumentError: Unknown image file format. [[{{node DecodeJpeg}}]]"
    ).to_dict()
    index = DatasetIndex("d", ["a"], {}, {}, skipped=["d/train/a/x.jpg: UnidentifiedImageError: cannot identify"])
    assert failures.explained(row, index)["error"].endswith(
        "gpubench found 1 unreadable image(s) when it scanned the data (first: d/train/a/x.jpg); your pipeline "
        "reads its folder itself: remove or fix them"
    )
    assert failures.culprit(row) == spec.pipeline  # the same files fail every run of it


@pytest.mark.parametrize(
    "status, error, done",
    [
        ("ok", "", True),
        ("oom", "OOM", True),
        ("skipped", "needs 4 GPUs, 1 present", True),
        ("error", "boom", False),
        ("timeout", "no result", False),
        ("skipped", failures.AFTER_FAILURE + "x", False),
    ],
)
def test_done_means_ok_out_of_memory_or_skipped_for_a_reason_of_its_own(status, error, done):
    assert failures.finished({"status": status, "error": error}) is done
