"""Random tensors made once and handed to every step: the model alone, with no decoding or
resizing (on a GPU each step still copies one batch from host memory, as any pipeline does).
Nothing stamps these batches: tensors in memory never wait, so a stamp would only cost."""

from __future__ import annotations

import keras
import numpy as np

from pipelines.batches import onehot
from pipelines.epochs import split_plan
from pipelines.feed import Feed, trains_on
from pipelines.handover import images_in


class Batches(keras.utils.PyDataset):
    """Batches made once, handed out in the order of one pass (`order`: which batch each step of a
    pass takes), `steps` a epoch, read in the training thread: the cheapest feed on jax and torch."""

    def __init__(self, batches: list, order: list[int], steps: int):
        super().__init__(workers=0)
        self.batches, self.order, self.steps = batches, order, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, i):
        return self.batches[self.order[i % len(self.order)]]


def build(index, spec, split: str) -> Feed:
    """As many full batches as the real pipelines would give in an epoch."""
    steps, _ = split_plan(index.count(split), spec, split)
    rng = np.random.default_rng(0)
    shape = (spec.batch, spec.input_size, spec.input_size, 3)
    x = rng.integers(0, 256, shape, dtype=np.uint8) if spec.transfer == "uint8" else rng.random(shape, dtype=np.float32)
    y = onehot(rng.integers(0, len(index.classes), spec.batch), len(index.classes))
    return feed_of([(x, y)], steps, spec)


def feed_of(batches: list, steps: int, spec, per_pass: int = 1) -> Feed:
    """(x, y) batches handed to `steps` steps an epoch (x may be a tuple or dict of tensors): the first
    alone, or, given a second (a short last batch), the first for all but the last of each pass of
    `per_pass` batches, as the job's own passes go."""
    order = [0] * (per_pass - 1) + [1] if len(batches) > 1 else [0]
    images = sum(images_in(batches[order[i % len(order)]]) for i in range(steps))
    if not trains_on(spec, "tensorflow"):
        return Feed(Batches(batches, order, steps), steps, images)
    import tensorflow as tf  # on TensorFlow, a tf.data of tensors costs less than a PyDataset

    ds = tf.data.Dataset.from_tensors(batches[0])
    if len(batches) > 1:
        ds = ds.repeat(per_pass - 1).concatenate(tf.data.Dataset.from_tensors(batches[1]))
    return Feed(ds.repeat().take(steps), steps, images)
