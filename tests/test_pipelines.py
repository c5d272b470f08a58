"""The pipelines feed the same images the same way: counts, order, labels and pixels."""

import numpy as np
import pytest
from PIL import Image

import pipelines
from bench.plan.grid import installed
from bench.plan.knobs import RunSpec
from pipelines.dataset import scan
from pipelines.epochs import epoch_plan, loader_depth, split_plan, window_steps
from pipelines.registry import describe_loader

# The bound keras and tfdata pixels agree within, after rescale=1/255. Nearest is exact
# (same IDCT, same source pixels as PIL); bilinear differs by PIL's rounding to uint8.
PARITY_TOLERANCE = {"nearest": 0.0, "bilinear": 1.01 / 255}


@pytest.mark.parametrize(
    "count, batch, steps, plan",
    [
        (148, 30, 0, (5, 148)),  # the seed's vgg16(20,5,1): a short last batch of 28
        (148, 30, 5, (5, 148)),
        (148, 6, 0, (25, 148)),
        (148, 30, 2, (2, 60)),  # fewer steps: full batches
        (10, 4, 5, (5, 20)),  # more steps: wrap round the images
    ],
)
def test_epoch_plan(count, batch, steps, plan):
    assert epoch_plan(count, batch, steps) == plan


@pytest.mark.parametrize(
    "knobs, window, steps",
    [
        (dict(workers=4, max_queue_size=10, epochs=2), 56, 56),  # 4 x (4 + 10) steps in the one window epoch
        (dict(workers=4, max_queue_size=10, epochs=5), 56, 14),  # spread over the four window epochs
        (dict(workers=32, max_queue_size=10, epochs=3), 168, 84),  # the seed's 32 workers
        (dict(workers=1, max_queue_size=10, epochs=2), 50, 50),  # one PyDataset thread loads in the training thread
        (dict(pipeline="synthetic", epochs=3), 50, 25),
        (dict(pipeline="torch", workers=0, max_queue_size=20, epochs=2), 50, 50),  # no worker: no prefetch either
        (dict(workers=4, max_queue_size=10, epochs=2, steps_per_epoch=80), 56, 80),  # already long enough
        (dict(workers=4, max_queue_size=10, epochs=2, window="epochs"), 56, 3),  # the epochs as asked: one pass
    ],
)
@pytest.mark.slow
def test_the_window_spans_enough_steps_to_see_the_loaders_throughput(tiny_tree, knobs, window, steps):
    index = scan(tiny_tree)  # 12 training images: a pass of 3 batches of 5
    spec = RunSpec(backbone="tiny", batch=5, **knobs)
    assert window_steps(spec) == window
    assert split_plan(index.count("train"), spec, "train") == (steps, steps * 5 if steps != 3 else 12)
    assert split_plan(index.count("val"), spec, "val")[0] == 1  # validation is never lengthened


@pytest.mark.slow  # Keras's own adapter, read in this process
@pytest.mark.parametrize("use_multiprocessing", [False, True])
@pytest.mark.parametrize("workers", [0, 1, 4])
def test_a_pydatasets_depth_and_description_follow_keras_rule(workers, use_multiprocessing):
    """Keras's adapter makes a queue of workers (an enqueuer) or loads in the training thread; the
    depth and the description say the same, read from the adapter, never started."""
    import keras
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    class Empty(keras.utils.PyDataset):
        def __len__(self):
            return 1

    knobs = dict(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=10)
    queued = PyDatasetAdapter(Empty(**knobs)).enqueuer is not None
    spec = RunSpec(pipeline="keras", **knobs)
    assert loader_depth(spec) == (workers + 10 if queued else 0)
    assert ("training thread" in describe_loader(spec)) == (not queued)


def test_the_do_this_line_of_each_shipped_loader_is_its_descriptors_and_says_its_knobs():
    """The report's "do this" reads a pipeline's code from its descriptor (bench/output/advice.py)."""
    from bench.output.advice import _loader_code

    point = {"batch": 30, "workers": 4, "use_multiprocessing": True, "max_queue_size": 10, "input_size": 64}
    lines = {name: _loader_code({**point, "pipeline": name}, {})[-1] for name in ("keras", "tfdata", "torch", "dali")}
    said = "# as measured, in your own code: "
    assert lines["keras"] == (
        f"{said}data = YourPyDataset(batch_size=30, workers=4, use_multiprocessing=True, max_queue_size=10)"
    )
    assert lines["tfdata"] == f"{said}data = files.map(load, num_parallel_calls=4).batch(30).prefetch(10)"
    assert lines["torch"] == (
        f"{said}data = DataLoader(dataset, batch_size=30, num_workers=4, prefetch_factor=3, "
        "persistent_workers=True, pin_memory=True)"
    )
    assert lines["dali"] == "# pipeline dali, batch 30"  # no line of its own yet: said, not made up


@pytest.mark.slow
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("size", [17, 32, 70])
def test_keras_and_tfdata_give_the_same_tensor(tiny_tree, tmp_path, interpolation, size):
    from pipelines import reader, tfdata

    png = tmp_path / "odd.png"  # another format and an odd shape
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)).save(png)
    for path in scan(tiny_tree).files["train"][:4] + [str(png)]:
        a = reader.load_image(path, size, interpolation)
        b = tfdata.load_image(path, size, interpolation).numpy()
        assert a.shape == b.shape == (size, size, 3)
        assert 0.0 <= a.min() and a.max() <= 1.0
        assert np.abs(a - b).max() <= PARITY_TOLERANCE[interpolation]


def _epoch(feed):
    return [(np.asarray(x), np.asarray(y)) for x, y in feed]


@pytest.mark.slow
def test_keras_feed_shuffles_training_every_epoch_and_never_validation(tiny_tree):
    index = scan(tiny_tree)
    spec = RunSpec(backbone="tiny", input_size=16, batch=5, workers=1, window="epochs")
    train = pipelines.build(index, spec, "train")
    assert (train.steps, train.images) == (3, 12)
    first = [train.data[i] for i in range(train.steps)]
    assert [len(x) for x, _ in first] == [5, 5, 2]
    orders = [train.data.plan.order.copy()]
    for _ in range(3):
        train.data.on_epoch_end()
        orders.append(train.data.plan.order.copy())
    assert any((o != orders[0]).any() for o in orders[1:])
    val = pipelines.build(index, spec, "val")
    assert (val.data.plan.order == np.arange(4)).all()
    val.data.on_epoch_end()
    assert (val.data.plan.order == np.arange(4)).all()


@pytest.mark.slow
def test_labels_follow_the_files(tiny_tree):
    index = scan(tiny_tree)
    for name in ("keras", "tfdata"):
        spec = RunSpec(backbone="tiny", input_size=16, pipeline=name, batch=4, workers=1)
        feed = pipelines.build(index, spec, "val")
        batches = _epoch(feed.data) if name == "tfdata" else [feed.data[i] for i in range(feed.steps)]
        labels = np.concatenate([y for _, y in batches]).argmax(axis=1)
        assert list(labels) == index.labels["val"]  # validation keeps the files' order


@pytest.mark.slow
def test_tfdata_gives_the_planned_batches_and_reshuffles(tiny_tree):
    index = scan(tiny_tree)
    spec = RunSpec(
        backbone="tiny", input_size=16, pipeline="tfdata", batch=5, workers=2, max_queue_size=2, window="epochs"
    )
    feed = pipelines.build(index, spec, "train")
    epochs = [_epoch(feed.data) for _ in range(3)]
    assert [[len(x) for x, _ in e] for e in epochs] == [[5, 5, 2]] * 3
    firsts = [e[0][0] for e in epochs]
    assert any(not np.array_equal(firsts[0], f) for f in firsts[1:])
    cached = pipelines.build(
        index, RunSpec(backbone="tiny", input_size=16, pipeline="tfdata", batch=5, cache=True, window="epochs"), "train"
    )
    assert sum(len(x) for x, _ in _epoch(cached.data)) == 12


@pytest.mark.slow
def test_synthetic_feed_has_full_batches_of_the_right_shape(tiny_tree):
    index = scan(tiny_tree)
    spec = RunSpec(backbone="tiny", input_size=16, pipeline="synthetic", batch=5, window="epochs")
    feed = pipelines.build(index, spec, "train")
    batches = _epoch(feed.data)
    assert (feed.steps, feed.images) == (3, 15) and len(batches) == 3
    assert batches[0][0].shape == (5, 16, 16, 3) and batches[0][1].shape == (5, 2)


def _first_batches(index, pipeline: str, **knobs):
    """Each validation batch (never shuffled) of `pipeline`, as numpy."""
    spec = RunSpec(backbone="tiny", input_size=16, pipeline=pipeline, batch=5, workers=1, window="epochs", **knobs)
    feed = pipelines.build(index, spec, "val")
    return (
        [np.asarray(x) for x, _ in (feed.data[i] for i in range(feed.steps))]
        if pipeline == "keras"
        else [np.asarray(x) for x, _ in feed.data]
    )


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["keras", "tfdata", "torch"])
def test_uint8_transfer_gives_the_model_the_same_input_after_its_scaling_layer(tiny_tree, pipeline):
    from models.layers import UnitRange

    if pipeline == "torch" and not installed("torch"):
        pytest.skip("torch is not installed")
    index = scan(tiny_tree)
    floats, pixels = _first_batches(index, pipeline), _first_batches(index, pipeline, transfer="uint8")
    assert all(p.dtype == np.uint8 for p in pixels) and all(f.dtype == np.float32 for f in floats)
    for f, p in zip(floats, pixels):
        assert p.nbytes * 4 == f.nbytes  # a quarter of the bytes cross the queue
        assert np.array_equal(np.asarray(UnitRange()(p)), f)


@pytest.mark.slow
@pytest.mark.parametrize("pipeline, workers", [("keras", 1), ("torch", 2)])
def test_the_decoded_cache_reads_each_file_once_and_gives_the_same_tensors_later(tiny_tree, pipeline, workers):
    if pipeline == "torch" and not installed("torch"):
        pytest.skip("torch is not installed")
    index = scan(tiny_tree)
    spec = RunSpec(
        backbone="tiny", input_size=16, pipeline=pipeline, batch=5, workers=workers, cache=True, window="epochs"
    )
    feed = pipelines.build(index, spec, "train")
    keras_feed = pipeline == "keras"
    plan = feed.data.plan if keras_feed else feed.data.batch_sampler.plan
    read = feed.data.read if keras_feed else feed.data.dataset.read
    seen = {}
    for _ in range(3):  # each epoch reshuffled; the plan holds this epoch's order until the next begins
        batches = [feed.data[i] for i in range(feed.steps)] if keras_feed else list(feed.data)
        for i, (x, _) in enumerate(batches):
            for j, image in zip(plan.files(i), np.asarray(x)):
                assert np.array_equal(seen.setdefault(int(j), image), image)  # the same tensor, epoch after epoch
        if keras_feed:
            feed.data.on_epoch_end()
    assert len(seen) == index.count("train") and read.cache.decodes == index.count("train")  # decoded once each
    assert (
        pipelines.build(
            index, RunSpec(backbone="tiny", input_size=16, batch=5, window="epochs"), "train"
        ).data.read.cache
        is None
    )


@pytest.mark.slow
@pytest.mark.skipif(not installed("nvidia.dali"), reason="DALI is not installed")
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_dali_reads_the_keras_pipelines_images_within_the_stated_tolerance(tmp_path, interpolation):
    from pipelines.dali import TOLERANCE
    from pipelines.dataset import make_synthetic
    from tests.dali_distance import distance

    index = scan(make_synthetic(tmp_path / "photos", train=6, val=5, classes=2, image_size=(640, 480)))
    found = distance(index, 224, interpolation)
    bound = TOLERANCE[interpolation]
    assert found["labels_equal"] and found["mean"] <= bound["mean"]
    assert found["share_over_8"] <= bound.get("share_over_8", 1.0) and found["p99"] <= bound.get("p99", 255)
    knobs = dict(
        backend="torch",
        backbone="tiny",
        input_size=224,
        batch=4,
        workers=2,
        window="epochs",
        interpolation=interpolation,
        transfer="uint8",
    )
    train = pipelines.build(index, RunSpec(pipeline="dali", **knobs), "train")
    epochs = [np.concatenate([np.asarray(train.data[i][0]) for i in range(train.steps)]) for _ in range(3)]
    assert any(not np.array_equal(epochs[0], e) for e in epochs[1:])  # reshuffled after every pass


@pytest.mark.slow  # the backend asked where it trains, in this process
def test_dali_decodes_where_the_backend_trains_not_where_nvml_sees_a_gpu(monkeypatch):
    """A CPU build of the backend beside a GPU NVML sees (the stand-in NVML): DALI decodes on the CPU."""
    pytest.importorskip("nvidia.dali")
    import importlib.util
    import sys
    from pathlib import Path

    import keras

    from bench.run import doctor
    from pipelines import dali

    found = importlib.util.spec_from_file_location("pynvml", Path(__file__).parent / "fake_nvml" / "pynvml.py")
    fake = importlib.util.module_from_spec(found)
    found.loader.exec_module(fake)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert doctor.nvml()["gpus"]  # NVML sees a GPU here
    assert dali.device_id(doctor.where(keras.backend.backend())["platform"]) is None
    assert dali.device_id("gpu") == 0 and dali.device_id("mps") is None
