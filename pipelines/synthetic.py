"""Random tensors made once and handed to every step: the model alone, with no decoding or
resizing (on a GPU each step still copies one batch from host memory, as any pipeline does).
Nothing stamps these batches: tensors in memory never wait, so a stamp would only cost."""

from __future__ import annotations

import keras
import numpy as np

from pipelines.batches import onehot
from pipelines.epochs import split_plan
from pipelines.feed import Feed, trains_on


class SameBatch(keras.utils.PyDataset):
    """One batch, `steps` times, read in the training thread: the cheapest feed on jax and torch."""

    def __init__(self, x, y, steps: int):
        super().__init__(workers=0)
        self.x, self.y, self.steps = x, y, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, i):
        return self.x, self.y


def build(index, spec, split: str) -> Feed:
    """As many full batches as the real pipelines would give in an epoch."""
    steps, _ = split_plan(index.count(split), spec, split)
    rng = np.random.default_rng(0)
    shape = (spec.batch, spec.input_size, spec.input_size, 3)
    x = rng.integers(0, 256, shape, dtype=np.uint8) if spec.transfer == "uint8" else rng.random(shape, dtype=np.float32)
    y = onehot(rng.integers(0, len(index.classes), spec.batch), len(index.classes))
    return feed_of(x, y, steps, spec)


def feed_of(x, y, steps: int, spec) -> Feed:
    """(x, y) handed to every one of `steps` steps; x may be a tuple or dict of tensors."""
    if not trains_on(spec, "tensorflow"):
        return Feed(SameBatch(x, y, steps), steps, steps * spec.batch)
    import tensorflow as tf  # on TensorFlow, a tf.data of one tensor costs less than a PyDataset

    return Feed(tf.data.Dataset.from_tensors((x, y)).repeat(steps), steps, steps * spec.batch)
