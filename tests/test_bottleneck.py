"""The three rates on a CPU where the answer is known by construction: a model that costs
nothing on large JPEGs is held back by the loader, a heavy model on tiny images by the model.

What one run on shared cores can hold is which ceiling is lower: both ceilings and the end-to-end
run are single runs in different processes, so their ratios (the efficiency, and the 0.8 line
between verdicts) move with whatever else the machine runs (measured 0.55 to 1.5 over identical
sweeps), and so does the gap between the ceilings: 5-20x apart beside the suite's other workers,
down to 1.75x (cheap model) and 2.2x (heavy model) on a machine loaded 4-5x. The verdict's rule is
tested on constructed rows in test_analysis; the end-to-end rate is only required to be a real,
positive figure here.

Both sweeps run in this process (tests/conftest.py's in_process) on one xdist worker, with the
short real tune of test_tune: their runs fork from one TensorFlow launcher, imported once."""

import pandas as pd
import pytest

from pipelines.dataset import make_synthetic
from tests.conftest import in_process

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tensorflow_sweeps")]


def sweep(tmp_path, data, *knobs, epochs=2):
    result = in_process(
        "sweep",
        "--preset",
        "smoke",
        "--data",
        data,
        "--out",
        tmp_path / "out",
        "--repeat",
        "1",
        "--set",
        f"epochs={epochs}",
        "--set",
        "window=epochs",
        *knobs,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    points = pd.read_csv(tmp_path / "out" / "points.csv")
    point = points[points.role == "point"].iloc[0]
    figures = point[["train_img_s", "pipeline_img_s", "model_img_s", "bound", "efficiency"]].to_dict()
    return point, f"{figures}\n" + (tmp_path / "out" / "report.md").read_text()


def test_a_cheap_model_on_large_images_is_limited_by_the_loader(tmp_path, no_figures):
    big = make_synthetic(tmp_path / "big", train=16, val=4, classes=2, image_size=(640, 480))
    # 20 steps an epoch (the 16 images wrap round), the two after the first timed: the model alone
    # takes milliseconds a step (1000-2000 images/s beside other work, the loader 100-200), and a
    # shorter window times it at a fraction of its rate (270 images/s with 10 steps; 225, against the
    # loader's 186, with one epoch of 20 timed beside two other pytest workers; 358 against 205 with
    # two, in a suite whose compilation cache started empty)
    point, report = sweep(
        tmp_path,
        big,
        "--set",
        "backbone=tiny",
        "--set",
        "input_size=32",
        "--set",
        "pipeline=keras",
        "--set",
        "workers=1",
        "--set",
        "batch=8",
        "--set",
        "steps_per_epoch=20",
        epochs=3,
    )
    assert point.pipeline_img_s < point.model_img_s, report
    assert point.bound != "compute" and point.train_img_s > 0, report
    assert point.decode_ceiling_img_s > 0 and point.pipeline_efficiency > 0


def test_a_heavy_model_on_small_images_is_limited_by_the_model(tmp_path, tiny_tree, no_figures):
    # 3 steps of 8 images an epoch (the 12 images wrap round), the second timed: as many vgg16
    # images timed as 2 epochs of 6 steps at 32 px, each costing 4x, tf.data's as cheap as at
    # 32 px (its images are 64x48). At 32 px the two were 4.7x apart beside the suite's other
    # worker, and once 2.4x under heavier load; at 64 px 11x and 20x (on a machine loaded 4-5x,
    # once 2.2x: one slow pipeline-alone epoch of 1.5 s).
    point, report = sweep(
        tmp_path,
        tiny_tree,
        "--set",
        "backbone=vgg16",
        "--set",
        "input_size=64",
        "--set",
        "pipeline=tfdata",
        "--set",
        "workers=2",
        "--set",
        "batch=8",
        "--set",
        "steps_per_epoch=3",
    )
    assert point.model_img_s < point.pipeline_img_s, report
    assert point.bound != "input" and point.train_img_s > 0, report
    assert point.train_gflops_per_image == pytest.approx(3 * 2 * 0.31 * 4, rel=0.1), report  # vgg16 at 64px
    assert point.achieved_tflops > 0 and 0 < point.mfu < 1, report
