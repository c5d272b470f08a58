"""NVIDIA DALI over the same files and labels: decoded (on a GPU by nvJPEG and the hardware JPEG
decoder, `decoders.image(device="mixed")`; on the CPU otherwise, which needs no driver and no
CUDA), resized with the same filter, scaled to [0, 1] or handed over as uint8.

DALI's own iterators hand the batches to fit, so that batches decoded on a GPU stay there: its
jax and PyTorch iterators through a PyDataset read in the training thread (DALI has threads and
a prefetch queue of its own), and on tensorflow its TF plugin's DALIDataset. Batches are always
full: an epoch is `steps` batches, the reader wrapping round the files; training reshuffles all
of them after every pass, validation reads them in order, its last batch padded.
"""

from __future__ import annotations

import importlib

import keras
from nvidia.dali import fn, pipeline_def, types

from pipelines.epochs import split_plan
from pipelines.feed import Feed, ReadyClock, trains_on

READER = "reader"
# How far DALI's pixels are from the keras pipeline's (PIL's), in levels of 0-255, as measured on
# gpubench's synthetic JPEGs (640x480 to 224 and to 32 px) with the CPU decoder: the decoded
# pixels are the same; its nearest resize picks a neighbouring source pixel in some rows and
# columns (mean 0.75, 3.6% of values over 8 at 224 px; none at 32), and its antialiased bilinear
# filter rounds otherwise (mean 0.09-0.17, 99% within 1, at most 19). The GPU's nvJPEG is not
# measured here.
TOLERANCE = {"nearest": {"mean": 1.0, "share_over_8": 0.05}, "bilinear": {"mean": 0.5, "p99": 2.0}}
INTERPOLATION = {"nearest": types.INTERP_NN, "bilinear": types.INTERP_LINEAR}
# DALI's iterator for each backend but TensorFlow, which takes its TF plugin's DALIDataset
ITERATORS = {"jax": "nvidia.dali.plugin.jax", "torch": "nvidia.dali.plugin.pytorch"}


def device_id(platform: str) -> int | None:
    """The GPU DALI decodes on: the backend's first where the backend trains on a GPU (`platform`,
    as the run stage's doctor.where found it), else None, a CPU-only pipeline, whatever NVML sees:
    a CPU build of jax beside a GPU takes host tensors."""
    return 0 if platform == "gpu" else None


def pipeline(files: list[str], labels: list[int], classes: int, spec, train: bool, device_id: int | None):
    """The DALI graph: read, decode (on the GPU where there is one), resize, scale, one-hot, as the keras pipeline."""

    @pipeline_def(
        batch_size=spec.batch,
        num_threads=max(1, spec.workers or 1),
        device_id=device_id,
        prefetch_queue_depth=max(1, spec.max_queue_size or 2),
        seed=0,
    )
    def images():
        jpegs, label = fn.readers.file(
            files=files, labels=labels, shuffle_after_epoch=train, pad_last_batch=not train, name=READER
        )
        decoded = fn.decoders.image(jpegs, device="cpu" if device_id is None else "mixed", output_type=types.RGB)
        x = fn.resize(
            decoded,
            resize_x=spec.input_size,
            resize_y=spec.input_size,
            interp_type=INTERPOLATION[spec.interpolation],
            antialias=spec.interpolation != "nearest",
        )
        if spec.transfer != "uint8":
            x = fn.cast(x, dtype=types.FLOAT) / 255.0
        y = fn.one_hot(label, num_classes=classes)
        return x, (y if device_id is None else y.gpu())  # labels on the images' device

    return images()


class DaliBatches(keras.utils.PyDataset):
    """`steps` batches an epoch from DALI's endless stream, read in the training thread."""

    def __init__(self, iterator, steps: int, ready: ReadyClock | None):
        super().__init__(workers=0)
        self.stream, self.steps, self.ready = _endless(iterator), steps, ready

    def __len__(self):
        return self.steps

    def __getitem__(self, i):
        batch = next(self.stream)
        batch = batch[0] if isinstance(batch, list) else batch
        if self.ready is not None:  # DALI prefetches: a batch it had ready comes back at once
            self.ready.mark(i)
        return batch["x"], batch["y"]


def _endless(iterator):
    while True:
        yield from iterator


def build(index, spec, split: str, platform: str = "cpu") -> Feed:
    """The DALI feed for `split`, through the plugin of the backend that trains (tf.data on
    TensorFlow), decoded on its GPU where `platform` says it trains on one."""
    train = split == "train"
    steps, _ = split_plan(index.count(split), spec, split)
    ready = ReadyClock(steps) if train else None
    device = device_id(platform)
    pipe = pipeline(index.files[split], index.labels[split], len(index.classes), spec, train, device)
    if trains_on(spec, "tensorflow"):
        return _tensorflow(pipe, spec, steps, train, device)
    plugin = importlib.import_module(ITERATORS[spec.backend])
    iterator = plugin.DALIGenericIterator([pipe], ["x", "y"], reader_name=READER, auto_reset=True)
    return Feed(DaliBatches(iterator, steps, ready), steps, steps * spec.batch, ready)


def _tensorflow(pipe, spec, steps: int, train: bool, device_id: int | None) -> Feed:
    """DALI's TF plugin: a tf.data.Dataset of the pipeline's batches, `steps` of them an epoch."""
    import tensorflow as tf
    from nvidia.dali.plugin import tf as dali_tf

    from pipelines.tfdata import stamped

    size, dtype = spec.input_size, tf.uint8 if spec.transfer == "uint8" else tf.float32
    with tf.device("/cpu:0" if device_id is None else "/gpu:0"):
        ds = dali_tf.DALIDataset(
            pipeline=pipe,
            batch_size=spec.batch,
            device_id=device_id,
            output_shapes=((spec.batch, size, size, 3), (spec.batch, None)),
            output_dtypes=(dtype, tf.float32),
        ).take(steps)
    if not train:
        return Feed(ds, steps, steps * spec.batch)
    ready = ReadyClock(steps)
    return Feed(stamped(ds, ready), steps, steps * spec.batch, ready)
