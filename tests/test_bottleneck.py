"""The three rates on a CPU where the answer is known by construction: a model that costs
nothing on large JPEGs is held back by the loader, a heavy model on tiny images by the model."""

import pandas as pd
import pytest

from pipelines.dataset import make_synthetic
from tests.conftest import gpubench


def sweep(tmp_path, data, *knobs):
    result = gpubench("sweep", "--preset", "smoke", "--data", data, "--out", "out", "--repeat", "1",
                      "--set", "epochs=3", "--set", "window=epochs", *knobs, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    points = pd.read_csv(tmp_path / "out" / "points.csv")
    return points[points.role == "point"].iloc[0], (tmp_path / "out" / "report.md").read_text()


def test_a_cheap_model_on_large_images_is_limited_by_the_loader(tmp_path):
    big = make_synthetic(tmp_path / "big", train=40, val=4, classes=2, image_size=(640, 480))
    # 20 steps an epoch (the 40 images wrap round): the model alone takes milliseconds a step,
    # and a one-pass epoch of 5 steps once timed it at a quarter of its rate. As in the test
    # below, one run on 2 shared cores cannot hold the 0.8 line between `input` and `overhead`
    # (it measured either over identical sweeps); the pipeline is the lower ceiling by far, and
    # end to end tracks it.
    point, report = sweep(tmp_path, big, "--set", "backbone=tiny", "--set", "input_size=32",
                          "--set", "pipeline=keras", "--set", "workers=1", "--set", "batch=8",
                          "--set", "steps_per_epoch=20")
    assert point.bound in ("input", "overhead") and 0.5 < point.efficiency < 1.5, report
    assert point.pipeline_img_s < point.model_img_s / 2
    # no bound on the wait for data: Keras reads a PyDataset ahead inside the steps (README), so
    # the keras pipeline's wait measured 0 to 0.3 of step time here; test_timing covers the wait
    assert point.decode_ceiling_img_s > 0 and 0 < point.pipeline_efficiency <= 1.5


def test_a_heavy_model_on_small_images_is_limited_by_the_model(tmp_path, tiny_tree):
    # 8 steps of 8 images an epoch (the 12 images wrap round) and 4 epochs. The model is the
    # lower ceiling by far, and end to end tracks it. Whether the verdict is `compute` (0.8 of
    # the model's rate or more) is not held here: the end-to-end run and the model-alone run are
    # single runs in different processes, and on 2 shared cores their ratio measured 0.55 to
    # 1.11 over identical sweeps; the rule itself is tested in test_analysis.
    point, report = sweep(tmp_path, tiny_tree, "--set", "backbone=vgg16", "--set", "input_size=32",
                          "--set", "pipeline=tfdata", "--set", "workers=2", "--set", "batch=8",
                          "--set", "steps_per_epoch=8", "--set", "epochs=4")
    assert point.bound in ("compute", "overhead") and 0.5 < point.efficiency < 1.5, report
    assert point.model_img_s < point.pipeline_img_s / 5
    assert point.data_wait_frac < 0.1
    assert point.train_gflops_per_image == pytest.approx(3 * 2 * 0.31, rel=0.1)  # vgg16 at 32px
    assert point.achieved_tflops > 0 and 0 < point.mfu < 1
