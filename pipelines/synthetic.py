"""Random tensors made once and handed to every step: the model alone, with no decoding or
resizing (on a GPU each step still copies one batch from host memory, as any pipeline does)."""

from __future__ import annotations

import keras
import numpy as np

from pipelines import Feed, ReadyClock, onehot, split_plan


class SameBatch(keras.utils.PyDataset):
    """One batch, `steps` times, read in the training thread: the cheapest feed on jax and torch."""

    def __init__(self, x, y, steps: int, ready: ReadyClock | None):
        super().__init__(workers=0)
        self.x, self.y, self.steps, self.ready = x, y, steps, ready

    def __len__(self):
        return self.steps

    def __getitem__(self, i):
        if self.ready is not None:
            self.ready.mark(i)
        return self.x, self.y


def build(index, spec, split: str) -> Feed:
    """As many full batches as the real pipelines would give in an epoch."""
    steps, _ = split_plan(index, spec, split)
    images, train = steps * spec.batch, split == "train"
    rng = np.random.default_rng(0)
    x = rng.random((spec.batch, spec.input_size, spec.input_size, 3), dtype=np.float32)
    y = onehot(rng.integers(0, len(index.classes), spec.batch), len(index.classes))
    if spec.backend != "tensorflow":
        ready = ReadyClock(steps) if train else None
        return Feed(SameBatch(x, y, steps, ready), steps, images, ready)
    import tensorflow as tf  # on TensorFlow, a tf.data of one tensor costs less than a PyDataset

    from pipelines.tfdata import stamped

    ds = tf.data.Dataset.from_tensors((x, y)).repeat(steps)
    if not train:
        return Feed(ds, steps, images)
    ds, ready = stamped(ds, steps)
    return Feed(ds, steps, images, ready)
