"""Random tensors made once and handed to every step: the model alone, with no decoding or
resizing (on a GPU each step still copies one batch from host memory, as any pipeline does)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pipelines import Feed, split_plan
from pipelines.tfdata import stamped


def build(index, spec, split: str) -> Feed:
    """As many full batches as the real pipelines would give in an epoch."""
    steps, _ = split_plan(index, spec, split)
    rng = np.random.default_rng(0)
    classes = len(index.classes)
    x = rng.random((spec.batch, spec.input_size, spec.input_size, 3), dtype=np.float32)
    y = np.eye(classes, dtype="float32")[rng.integers(0, classes, spec.batch)]
    ds = tf.data.Dataset.from_tensors((x, y)).repeat(steps)
    if split != "train":
        return Feed(ds, steps, steps * spec.batch)
    ds, ready = stamped(ds, steps)
    return Feed(ds, steps, steps * spec.batch, ready)
