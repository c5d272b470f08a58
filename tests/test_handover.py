"""A user's pipeline goes to fit as the kind it is (pipelines/handover.py): a PyDataset as itself,
its workers, queue and on_epoch_end the user's; tf.data as tf.data; a DataLoader as itself; any
other iterable pulled batch by batch. Each training batch is stamped ready and its images counted
as handed over, so a short last batch or a pipeline's own batch size is counted as it is."""

import os
import threading

import pytest

from bench.plan.grid import one_point
from pipelines.dataset import make_synthetic, scan
from pipelines.registry import RETURNED
from pipelines.user import build
from tests import user_pipelines


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return scan(make_synthetic(tmp_path_factory.mktemp("data") / "d", train=16, val=8, classes=2, image_size=(40, 30)))


def _feed(index, ref, **knobs):
    spec = one_point({"pipeline": ref, "backbone": "null", "input_size": 32, "epochs": 2, "window": "epochs", **knobs})
    return build(index, spec, "train")


def _handed_over(feed) -> list:
    """The batches fit would take: through Keras's own adapter for the object handed over."""
    from keras.src.trainers.data_adapters import get_data_adapter

    return list(get_data_adapter(feed.data).get_numpy_iterator())


KINDS = {
    "tfdata_images": "DatasetV2",
    "pydataset_images": "Batches",
    "dataloader_images": "DataLoader",
    "random_images": "Handover",
}
# what the record says each returned (the report's advice reads it)
SAID = {"tfdata_images": "tfdata", "pydataset_images": "keras", "dataloader_images": "torch", "random_images": ""}


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_user_pipeline_goes_to_fit_as_the_kind_it_is_stamped_and_counted(index, kind):
    """workers=0 here, so that no loader starts: the workers' own test is below (slow)."""
    feed = _feed(
        index,
        f"examples.pipelines:{kind}",
        batch=4,
        steps_per_epoch=3,
        **({"workers": 0} if "random" not in kind else {}),
    )
    assert KINDS[kind] in [c.__name__ for c in type(feed.data).__mro__]
    assert feed.returned == RETURNED[SAID[kind]]
    batches = _handed_over(feed)
    assert feed.steps == 3 and all(x.shape == (4, 32, 32, 3) and y.shape == (4, 2) for x, y in batches)
    assert feed.first[0].shape == (4, 32, 32, 3)
    assert all(feed.ready.times[i] > 0 for i in range(feed.steps))
    assert [feed.ready.sizes[i] for i in range(feed.steps)] == [4, 4, 4]


@pytest.mark.slow
def test_a_user_pydataset_is_the_user_s_own_instance_with_its_loader_settings(index):
    import keras

    feed = _feed(
        index, "examples.pipelines:pydataset_images", batch=4, workers=3, use_multiprocessing=True, max_queue_size=7
    )
    assert isinstance(feed.data, keras.utils.PyDataset) and type(feed.data).__name__ == "Batches"
    assert (feed.data.workers, feed.data.use_multiprocessing, feed.data.max_queue_size) == (3, True, 7)


@pytest.mark.slow
@pytest.mark.parametrize("ref", ["tests.user_pipelines:short_last", "tests.user_pipelines:tfdata_short_last"])
def test_a_short_last_batch_is_counted_as_handed_over(index, ref):
    """100 examples at batch 32: 100 images a pass, not 4 x 32 = 128."""
    feed = _feed(index, ref, batch=32)
    batches = _handed_over(feed)
    assert [len(x) for x, _ in batches] == [32, 32, 32, 4]
    assert sum(feed.ready.sizes[i] for i in range(feed.steps)) == user_pipelines.EXAMPLES


@pytest.mark.slow
def test_a_pipeline_s_own_batch_size_is_counted_not_the_batch_knob(index):
    feed = _feed(index, "tests.user_pipelines:own_batches", batch=16)
    _handed_over(feed)
    assert [feed.ready.sizes[i] for i in range(feed.steps)] == [user_pipelines.OWN_BATCH] * 3


@pytest.mark.slow
@pytest.mark.parametrize("processes", [False, True])
def test_a_user_pydataset_with_workers_loads_off_the_main_thread_and_ends_every_epoch(index, processes):
    """Trained for 3 epochs: every batch loaded by the PyDataset's own workers (threads, or forked
    processes whose stamps and counts reach this one), on_epoch_end called after each epoch, and
    the window's images those its batches held (100 an epoch: a short last batch)."""
    from bench.run.timing import timer_for
    from bench.run.training import compile_model
    from models.user import null_like

    spec = one_point(
        {
            "pipeline": "tests.user_pipelines:watched",
            "backbone": "null",
            "batch": 32,
            "epochs": 3,
            "window": "epochs",
            "workers": 2,
            "use_multiprocessing": processes,
        }
    )
    feed, val = build(index, spec, "train"), build(index, spec, "val")
    user_pipelines.CALLS.value = user_pipelines.EPOCH_ENDS.value = 0  # the first batch was read here, for its shapes
    model = compile_model(null_like(feed.first))
    timer = timer_for(spec.backend, feed.ready)
    model.fit(feed.data, validation_data=val.data, epochs=3, callbacks=[timer], verbose=0, shuffle=False)
    loaded = list(zip(user_pipelines.LOADED_BY[0::2], user_pipelines.LOADED_BY[1::2]))[: user_pipelines.CALLS.value]
    here = (os.getpid(), threading.get_ident() % 2**31)
    workers = [t for t in loaded if t != here]  # Keras itself reads a batch or two here, for the signature
    assert len(workers) >= 3 * 4 and len(loaded) - len(workers) <= 2
    assert all(pid != os.getpid() if processes else pid == os.getpid() for pid, _ in workers)
    assert user_pipelines.EPOCH_ENDS.value >= 3  # Keras calls it once more as fit ends, as in a plain fit
    summary = timer.summary(feed.steps, feed.images)
    assert summary["window_images"] == 2 * user_pipelines.EXAMPLES
