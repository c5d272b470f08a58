"""The ceilings of the job that runs (bench/run/assemble.py, pipelines/user.py): a user's pipeline that
makes its own batches, images of its own size or labels of its own classes gets a model-alone ceiling
measured on those batches, not on the batch and input_size knobs; the batch knob it ignores is not
swept; what gpubench cannot reconcile is a one-line error naming both sides. Checked in process: the
model and feeds each run would train, built as the worker builds them."""

import contextlib

import pytest

from bench.plan.grid import build_grid, model_ceiling, one_point, pipeline_ceiling
from bench.plan.knobs import SpecError
from pipelines.dataset import make_synthetic, scan

OWN = "tests.user_pipelines:own_size_images"
MODEL = "examples.models:small_cnn"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A folder of 2 classes, 32 px images: neither the job's classes nor its image size."""
    return scan(make_synthetic(tmp_path_factory.mktemp("data") / "d", train=16, val=8, classes=2, image_size=(32, 32)))


def _built(index, spec):
    from bench.run.assemble import model_and_feeds

    return model_and_feeds(spec, index, spec, len(index.classes), contextlib.nullcontext())


def test_a_pipeline_that_makes_its_own_batches_is_not_swept_over_batch_and_refuses_the_knob():
    grid, _ = build_grid([{"pipeline": [OWN], "backbone": [MODEL], "batch": [32, 128, 256], "input_size": [32]}], [])
    assert len(grid) == 1 and grid[0].batch is None
    ceiling = model_ceiling(grid[0])
    assert ceiling.shaped_by == OWN and ceiling.batch is None
    with pytest.raises(SpecError, match="no batch parameter: it makes batches of its own size"):
        build_grid([{"pipeline": [OWN], "backbone": [MODEL]}], ["batch=8"])


@pytest.mark.slow
def test_the_model_alone_ceiling_runs_on_the_job_s_batches_shapes_and_classes(index):
    """The job: 24 images a batch at 20 px in 3 classes; the knobs say batch 16 (blanked), 32 px, and
    the folder 2 classes. The point and its model ceiling train the same model on the same shapes."""
    point = one_point({"pipeline": OWN, "backbone": MODEL, "input_size": 32, "epochs": 2})
    model, train, _ = _built(index, point)
    ceiling_model, ceiling_train, _ = _built(index, model_ceiling(point))
    assert tuple(model.inputs[0].shape[1:]) == tuple(ceiling_model.inputs[0].shape[1:]) == (20, 20, 3)
    assert model.outputs[0].shape[-1] == ceiling_model.outputs[0].shape[-1] == 3
    assert ceiling_train.first[0].shape == train.first[0].shape == (24, 20, 20, 3)
    assert ceiling_train.images == ceiling_train.steps * 24
    _, null_train, _ = _built(index, pipeline_ceiling(point))
    assert null_train.first[0].shape == (24, 20, 20, 3)


@pytest.mark.slow
def test_a_short_last_batch_has_its_real_share_in_the_model_ceiling(index):
    """100 examples at batch 32 a pass: three of 32 and one of 4, in the ceiling's tensors as in the job."""
    point = one_point({"pipeline": "tests.user_pipelines:short_last", "backbone": MODEL, "batch": 32, "epochs": 2})
    _, feed, _ = _built(index, model_ceiling(point))
    sizes = [len(feed.data[i][0]) for i in range(feed.steps)] if hasattr(feed.data, "__getitem__") else None
    if sizes is None:  # tf.data on TensorFlow
        sizes = [len(x) for x, _ in feed.data.as_numpy_iterator()]
    assert sizes[:4] == [32, 32, 32, 4] and sum(sizes) == feed.images
    assert feed.images == sum(([32, 32, 32, 4] * feed.steps)[: feed.steps])


@pytest.mark.slow
def test_labels_of_other_classes_than_the_folder_s_are_one_line_errors_naming_both(index):
    point = one_point({"pipeline": "tests.user_pipelines:three_class_folder", "backbone": MODEL, "batch": 4})
    with pytest.raises(ValueError, match="one-hot labels of 3 classes, but the data folder it reads has 2"):
        _built(index, point)


@pytest.mark.slow
def test_a_model_of_fixed_outputs_against_labels_of_other_classes_names_both(index, tmp_path):
    """A saved model giving 2 classes, fed labels of 3 by a pipeline that reads its own data."""
    from examples.models import small_cnn

    path = tmp_path / "two.keras"
    small_cnn((20, 20, 3), 2).save(path)
    point = one_point({"pipeline": OWN, "backbone": str(path), "epochs": 2})
    with pytest.raises(ValueError, match="one-hot labels of 3 classes, but the model gives 2 outputs"):
        _built(index, point)


def test_the_tables_show_the_batch_the_pipeline_made_and_still_join_its_ceilings():
    """Rows of a pipeline that makes batches of 24: the points table shows batch 24 for the point and
    its ceilings, and a spec read back from that row has the point's id (so passes and looks find its
    ceilings)."""
    from bench.analyse.points import spec_of, table
    from bench.results.record import RunRecord

    point = one_point({"pipeline": OWN, "backbone": MODEL, "input_size": 32})
    rows = [
        RunRecord.for_spec(spec, status="ok", train_img_s=rate, window_s=5.0, host_batch=24, total_s=1.0).to_dict()
        for spec, rate in ((point, 95.0), (pipeline_ceiling(point), 100.0), (model_ceiling(point), 500.0))
    ]
    points = table(rows, {}, {})
    p = points[points.point_id == point.point_id].iloc[0]
    assert (points.batch == 24).all() and spec_of(p.to_dict()).point_id == point.point_id
    keras = one_point({"pipeline": "keras", "backbone": MODEL, "input_size": 32, "batch": 8})
    beside = RunRecord.for_spec(keras, status="ok", train_img_s=90.0, window_s=5.0, total_s=1.0).to_dict()
    mixed = table([*rows, beside], {}, {})  # a shipped pipeline's batches beside the blanks filled
    assert sorted(f"{b}" for b in mixed.batch) == ["24", "24", "24", "8"]  # as the report labels rows, not 24.0
    assert (p.pipeline_img_s, p.model_img_s, p.bound) == (100.0, 500.0, "input")
