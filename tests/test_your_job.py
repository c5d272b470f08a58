"""The user's own model and pipeline: checked before any run, importing no framework; swept
through the CLI with tiny shapes (slow: each starts workers); the 'do this' paragraph.

The sweeps run in this process (tests/conftest.py's in_process) on one xdist worker, with the
user's code on PYTHONPATH as docs/your-job.md says: their runs fork from one launcher that
imported every installed framework (a user's code may import any), once."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from bench.output.advice import do_this
from bench.plan.grid import build_grid, one_point
from bench.plan.knobs import SpecError
from pipelines.dataset import make_synthetic
from pipelines.registry import PIPELINES, RETURNED, describe, knob_meaning
from tests.conftest import in_process

REPO = Path(__file__).resolve().parent.parent


def test_a_user_pipeline_s_knobs_are_the_parameters_it_names():
    assert set(knob_meaning("examples.pipelines:pydataset_images")) == {
        "workers",
        "use_multiprocessing",
        "max_queue_size",
    }
    assert knob_meaning("examples.pipelines:random_images") == {}
    assert describe("examples.pipelines:tfdata_images").module == "pipelines.user"


def test_a_function_that_takes_workers_has_them_swept_one_that_does_not_refuses_them():
    grid, _ = build_grid([{"pipeline": ["examples.pipelines:tfdata_images"]}], ["workers=1,4"])
    assert sorted(p.workers for p in grid) == [1, 4]
    with pytest.raises(SpecError, match="has no workers parameter"):
        build_grid([{"pipeline": ["examples.pipelines:random_images"]}], ["workers=4"])
    grid, _ = build_grid([{"pipeline": ["examples.pipelines:random_images"]}], [])
    assert {p.workers for p in grid} == {None}  # blanked: the function takes none


@pytest.mark.parametrize(
    "override, message",
    [
        ("backbone=no/such/model.keras", "no such file"),
        ("backbone=examples.models:nope", "defines no function nope"),
        ("backbone=examples.nope:build", "no module examples.nope"),
        ("pipeline=examples.pipelines:nope", "defines no function nope"),
        ("pipeline=not-a-ref:", "expected package.module:function"),
    ],
)
def test_a_model_or_pipeline_that_cannot_be_found_is_a_one_line_error(override, message):
    with pytest.raises(SpecError, match=message) as error:
        build_grid([{}], [override])
    assert "\n" not in str(error.value)


def _point(**knobs):
    row = {
        "pipeline": "examples.pipelines:pydataset_images",
        "backbone": "examples.models:small_cnn",
        "batch": 64,
        "workers": 8.0,
        "use_multiprocessing": False,
        "max_queue_size": 10.0,
        "precision": "mixed_bfloat16",
        "xla": "on",
        "train_img_s": 900.0,
        "bound": "input",
        "bound_doubt": "",
        "role": "point",
        "repeats_ok": 2,
        "input_size": 64,
        "epochs": 1,
    }
    return {**row, **knobs}


def test_do_this_gives_the_fastest_setting_as_code():
    points = pd.DataFrame([_point(), _point(batch=32, train_img_s=500.0)])
    lines = do_this(points, {"data": "img", "classes": 2})
    code = lines[lines.index("```python") + 1 : lines.index("```", lines.index("```python") + 1)]
    assert code == [
        "import keras",
        'keras.mixed_precision.set_global_policy("mixed_bfloat16")  # before building the model',
        "from examples.models import small_cnn",
        "model = small_cnn(input_shape=(64, 64, 3), classes=2)  # your function",
        "model.jit_compile = True  # after compiling: XLA on, as measured",
        "from examples.pipelines import pydataset_images",
        "data = pydataset_images(directory='img/train', batch=64, workers=8, use_multiprocessing=False, "
        "max_queue_size=10, input_size=64)  # your function, with these arguments",
        "model.fit(data, epochs=1, shuffle=False)  # the sweep's epochs: use yours",
    ]
    assert "900 images/s" in lines[2] and "the input pipeline" in lines[2]
    assert do_this(pd.DataFrame([_point(pipeline="keras", backbone="vgg16")])) == []


@pytest.mark.parametrize(
    "function",
    [
        pytest.param(f, marks=pytest.mark.slow)
        for f in ("pydataset_images", "random_images", "tfdata_images", "dataloader_images", "directory_images")
    ]
    + [pytest.param(name, marks=pytest.mark.slow) for name in ("keras", "tfdata", "torch")],  # shipped: its example
)
def test_the_do_this_code_runs_as_printed_for_every_kind_of_pipeline(tmp_path, monkeypatch, function):
    """The printed lines executed as they are, on a small tree, for each kind of loader a function
    may return (as the handover saw it: a PyDataset, tf.data, a DataLoader, a plain generator):
    every argument the example functions need, only those they take, a valid compile setting, and
    a fit that runs the steps gpubench measured (a generator's called again, as gpubench did)."""
    from pipelines.dataset import scan
    from pipelines.user import build

    monkeypatch.chdir(tmp_path)
    ref = function if function in PIPELINES else f"examples.pipelines:{function}"  # shipped: run by its example
    index = scan(make_synthetic(tmp_path / "img", train=8, val=2, classes=2, image_size=(24, 16)))
    loader = {"workers": 0, "use_multiprocessing": False, "max_queue_size": 2}  # no loader process starts here
    loader = {k: v for k, v in loader.items() if k in knob_meaning(ref)}
    knobs = {"pipeline": ref, "backbone": "null", "batch": 4, "input_size": 16, "epochs": 1, "steps_per_epoch": 3}
    returned = "" if ref in PIPELINES else build(index, one_point({**knobs, **loader, "window": "epochs"}), "train")
    point = _point(pipeline=ref, batch=4, precision="float32", input_size=16, xla="off", train_steps=3)
    point |= {k: None for k in ("workers", "use_multiprocessing", "max_queue_size")} | loader
    point["loader"] = f"{ref}(...); it {returned.returned}" if returned else "the shipped loader"
    lines = do_this(pd.DataFrame([point]), {"data": "img", "classes": 2})
    code = "\n".join(lines[lines.index("```python") + 1 : lines.index("```", lines.index("```python") + 1)])
    namespace = {}
    exec(compile(code, "do-this", "exec"), namespace)
    assert namespace["model"].jit_compile is False
    assert len(namespace["model"].history.history["loss"]) == 1
    serial = function == "random_images"  # 8 batches a pass would run out in a longer fit: called again
    assert ("steps_per_epoch=3" in code) == serial and ("in the training thread" in lines[2]) == serial


@pytest.mark.parametrize(
    "pipeline, loader, own",
    [
        ("torch", "DataLoader: 4 worker processes", "a torch DataLoader"),
        ("keras", "PyDataset: 4 threads", "a PyDataset"),
        ("tfdata", "tf.data: map parallel=4", "tf.data"),
        (
            "examples.pipelines:tfdata_images",
            f"examples.pipelines:tfdata_images(...); it {RETURNED['tfdata']}",
            "tf.data",
        ),
    ],
)
def test_the_advice_never_offers_the_loader_that_ran(pipeline, loader, own):
    lines = do_this(pd.DataFrame([_point(pipeline=pipeline, loader=loader)]), {"classes": 2})
    said = lines[2].partition("another loader: ")[2]
    assert said and own not in said and said.count(" or ") == 1


def test_do_this_names_no_lever_a_saved_model_cannot_take():
    lines = do_this(pd.DataFrame([_point(backbone="my.keras", bound="compute", precision="float32")]), {"classes": 2})
    assert "a larger batch or XLA are the levers" in lines[2] and "mixed precision" not in lines[2]
    assert "model = keras.saving.load_model('my.keras')  # keeps its compile settings" in lines


def test_do_this_names_no_limit_the_report_withholds():
    """The mine sweep's fastest point was 1.14x its own pipeline-alone ceiling on 0.9 s windows: the
    report withheld its bound, so the advice must not state one either."""
    doubt = "windows of 0.9 s, under 2 s"
    lines = do_this(pd.DataFrame([_point(bound_doubt=doubt), _point(batch=32, train_img_s=500.0)]))
    assert f"what limits it: not known: {doubt}." in lines[2] and "the input pipeline" not in lines[2]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("data") / "d", train=16, val=8, classes=2, image_size=(40, 30))


@pytest.fixture
def with_examples(monkeypatch, no_figures):
    """The user's code found on PYTHONPATH, as docs/your-job.md says: here the checkout, for
    examples/. The same value in every test, so that their runs share one launcher. The reports
    are drawn without figures (no_figures): these sweeps check rows and words."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


def _sweep(tmp_path, tree, *overrides, ceilings=False):
    args = ["sweep", "--preset", "smoke", "--data", tree, "--out", tmp_path / "r"]
    args += [
        a
        for o in ["batch=4", "epochs=2", "window=epochs", "steps_per_epoch=3", "validation_steps=1", *overrides]
        for a in ("--set", o)
    ]
    done = in_process(*args, *([] if ceilings else ["--no-ceilings"]), cwd=tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "r/runs.jsonl").read_text().splitlines()]
    return done, rows, pd.read_csv(tmp_path / "r/points.csv")


KINDS = [f"examples.pipelines:{f}" for f in ("tfdata_images", "pydataset_images")]


@pytest.mark.slow
@pytest.mark.xdist_group("user_code_sweeps")
def test_a_saved_model_fed_by_each_kind_of_user_pipeline_alone_and_end_to_end(with_examples, tmp_path, tree):
    """A user's pipeline measured alone and end to end, with the model-alone ceiling: the verdict's
    columns, as for the shipped pipelines. Two kinds here (a tf.data.Dataset, a PyDataset); every
    kind's handover to fit is held in process by tests/test_handover.py."""
    from examples import save_model

    saved = tmp_path / "small.keras"
    save_model.main([str(saved), "32", "2"])  # as `python -m examples.save_model` does, without a process
    kinds = KINDS
    done, rows, points = _sweep(
        tmp_path, tree, f"backbone={saved}", "pipeline=" + ",".join(kinds), "workers=0", ceilings=True
    )
    assert done.returncode == 0, done.stderr
    assert {r["status"] for r in rows} == {"ok"}, [r["error"] for r in rows]
    fed = points[points.role.eq("point")].set_index("pipeline")
    assert set(fed.index) == set(kinds)
    assert fed.pipeline_img_s.notna().all() and fed.model_img_s.notna().all() and fed.bound.notna().all()
    assert "## Do this" in (tmp_path / "r/report.md").read_text()
    # each run says what the function returned: the advice reads it
    assert {k: fed.loader[k].endswith(f"; it {RETURNED[v]}") for k, v in zip(kinds, ("tfdata", "keras"))} == {
        k: True for k in kinds
    }


@pytest.mark.slow
@pytest.mark.xdist_group("user_code_sweeps")
def test_a_model_function_a_token_model_a_failing_pipeline_and_wrong_shapes_give_their_rows(
    with_examples, tmp_path, tree
):
    done, rows, _ = _sweep(
        tmp_path,
        tree,
        "backbone=examples.models:small_cnn,examples.models:token_classifier",
        "pipeline=keras,examples.pipelines:token_batches,examples.pipelines:failing",
    )
    by = {(r["backbone"].split(":")[1], r["pipeline"].split(":")[-1]): r for r in rows}
    assert by["small_cnn", "keras"]["status"] == "ok", by["small_cnn", "keras"]["error"]
    assert by["token_classifier", "token_batches"]["status"] == "ok", by["token_classifier", "token_batches"]["error"]
    assert "the data server is unreachable" in by["small_cnn", "failing"]["error"]
    assert (
        "the pipeline yields inputs of shape [(32,)], but the model takes [(32, 32, 3)]"
        in by["small_cnn", "token_batches"]["error"]
    )
    assert (
        "yields inputs of shape [(32, 32, 3)], but the model takes [(32,)]" in by["token_classifier", "keras"]["error"]
    )


@pytest.mark.slow
@pytest.mark.xdist_group("user_code_sweeps")
def test_a_corrupt_image_in_a_user_pipeline_stops_the_sweep_after_one_run_and_points_to_the_file(
    with_examples, tmp_path
):
    """tf.data's decode error names no file: the row points to the unreadable one the scan listed; the
    pipeline's other runs and the ceilings of its failed points are not run; the sweep exits 1."""
    data = make_synthetic(tmp_path / "img", train=16, val=4, classes=2, image_size=(24, 16))
    bad = sorted((data / "train").glob("*/*.jpg"))[0]
    bad.write_bytes(b"not a jpeg")
    out = in_process(
        "sweep",
        "--preset",
        "mine",
        "--gpu",
        "cpu",
        "--data",
        data,
        "--out",
        tmp_path / "out",
        "--set",
        "pipeline=examples.pipelines:tfdata_images",
        "--set",
        "batch=4",
        "--set",
        "workers=1",
        "--set",
        "precision=float32",
        "--set",
        "epochs=2",
        "--set",
        "input_size=16",
        cwd=REPO,
    )
    assert out.returncode == 1, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("first error (1 failed, 2 not run after it") and f"(first: {bad})" in last
    assert sum(" ok " in line or " error " in line for line in out.stderr.splitlines() if line.startswith("[")) == 1
