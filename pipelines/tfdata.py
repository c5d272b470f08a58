"""The same files, labels, resize and scaling as the keras pipeline, read by tf.data."""

from __future__ import annotations

import tensorflow as tf

from pipelines.batches import onehot
from pipelines.epochs import split_plan
from pipelines.feed import Feed, ReadyClock, trains_on


def _pil_nearest_indices(length, size: int):
    """The source pixels PIL's NEAREST picks: it adds the step in double precision one pixel
    at a time, which lands on other pixels than floor((i + 0.5) * step) in about 3% of columns."""
    step = tf.cast(length, tf.float64) / size
    offsets = tf.concat([[step * 0.5], tf.fill([size - 1], step)], axis=0)
    return tf.minimum(tf.cast(tf.floor(tf.cumsum(offsets)), tf.int32), tf.cast(length, tf.int32) - 1)


def _decode(data):
    """JPEGs with the accurate integer IDCT: the one PIL uses, so decoded pixels match exactly."""
    return tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(data, channels=3, expand_animations=False),
    )


def load_image(path, size: int, interpolation: str, transfer: str = "float32"):
    """Decode, resize and rescale=1/255 (or keep the uint8 pixels, for the model to scale) so
    that the tensor matches the keras pipeline's (PIL's) within the bound tests/test_pipelines.py
    checks."""
    image = _decode(tf.io.read_file(path))
    if interpolation == "nearest":
        shape = tf.shape(image)
        image = tf.gather(image, _pil_nearest_indices(shape[0], size), axis=0)
        image = tf.gather(image, _pil_nearest_indices(shape[1], size), axis=1)
    else:  # PIL's bilinear widens its filter when it shrinks: tf's antialias does the same
        image = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)  # as PIL rounds
    return image if transfer == "uint8" else tf.cast(image, tf.float32) / 255.0


def stamped(ds: tf.data.Dataset, ready: ReadyClock) -> tf.data.Dataset:
    """Stamp each batch ready, and count its images, as it passes: a sequential map, so the stamp is
    the time the batch left what comes before it (batching here; a user's whole pipeline, its
    prefetch included, in pipelines/handover.py), whatever runs ahead of the step."""

    def stamp(j, images):
        ready.mark(int(j))
        ready.count(int(j), int(images))
        return 0.0

    def mark(i, batch):
        done = tf.py_function(stamp, [i, tf.shape(tf.nest.flatten(batch)[0])[0]], tf.float32)
        with tf.control_dependencies([done]):
            return tf.nest.map_structure(tf.identity, batch)

    return ds.enumerate().map(mark)


def build(index, spec, split: str) -> Feed:
    """The tf.data feed for `split`: decode in parallel (cached if asked), shuffle, batch, stamp, prefetch."""
    if not trains_on(spec, "tensorflow"):  # tf.data only feeds another backend: keep TF off its GPUs
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # TensorFlow's runtime already started (the validation feed)
            pass
    train = split == "train"
    files = index.files[split]
    steps, images = split_plan(index.count(split), spec, split)
    labels = onehot(index.labels[split], len(index.classes))
    parallel = spec.workers or tf.data.AUTOTUNE
    ds = tf.data.Dataset.from_tensor_slices((files, labels))

    def decode(path, label):
        return load_image(path, spec.input_size, spec.interpolation, spec.transfer), label

    if spec.cache:  # decode once, then shuffle the decoded images
        ds = ds.map(decode, num_parallel_calls=parallel).cache()
    if train:
        ds = ds.shuffle(len(files), reshuffle_each_iteration=True)
    ds = ds.repeat().take(images)
    if not spec.cache:
        ds = ds.map(decode, num_parallel_calls=parallel)
    ready = ReadyClock(steps) if train else None
    ds = stamped(ds.batch(spec.batch), ready) if train else ds.batch(spec.batch)
    return Feed(ds.prefetch(spec.max_queue_size or tf.data.AUTOTUNE), steps, images, ready)
