"""Pipelines a user might write, for the handover's tests: a PyDataset that records where and how
often Keras called it, one pass of 100 examples in batches of 32 (a short last batch), and a
function that makes its own 64-example batches whatever batch gpubench sweeps."""

from __future__ import annotations

import multiprocessing
import os
import threading

import numpy as np

EXAMPLES = 100
OWN_BATCH = 64
LOADED_BY = multiprocessing.Array("l", 64)  # (pid, thread id % 2**31) of each __getitem__, shared with forked workers
CALLS = multiprocessing.Value("i", 0)
EPOCH_ENDS = multiprocessing.Value("i", 0)


def _batch(n: int, size: int = 8):
    rng = np.random.default_rng(n)
    return rng.random((n, size, size, 3), dtype=np.float32), np.eye(2, dtype="float32")[rng.integers(0, 2, n)]


def watched(batch, workers, use_multiprocessing, split):
    """A PyDataset of 100 examples in `batch`-sized batches, noting the process and thread each
    training batch was loaded in and counting on_epoch_end's calls in training."""
    import keras

    class Watched(keras.utils.PyDataset):
        def __len__(self):
            return -(-EXAMPLES // batch)

        def __getitem__(self, i):
            if split != "train":
                return _batch(min(batch, EXAMPLES - i * batch))
            with CALLS.get_lock():
                slot = CALLS.value % (len(LOADED_BY) // 2)
                CALLS.value += 1
            LOADED_BY[2 * slot], LOADED_BY[2 * slot + 1] = os.getpid(), threading.get_ident() % 2**31
            return _batch(min(batch, EXAMPLES - i * batch))

        def on_epoch_end(self):
            if split != "train":
                return
            with EPOCH_ENDS.get_lock():
                EPOCH_ENDS.value += 1

    return Watched(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=4)


def short_last(batch):
    """One pass of 100 examples: a plain list of batches, the last one short."""
    return [_batch(min(batch, EXAMPLES - start)) for start in range(0, EXAMPLES, batch)]


def tfdata_short_last(batch):
    """The same 100 examples as a tf.data dataset batched without drop_remainder."""
    import tensorflow as tf

    x, y = _batch(EXAMPLES)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).prefetch(2)


def own_batches():
    """Batches of 64 whatever the sweep's batch: the function takes no `batch`."""
    return [_batch(OWN_BATCH) for _ in range(3)]


def own_size_images(split):
    """Batches of 24 images at 20x20 pixels in 3 classes, one-hot, whatever gpubench's batch, input_size
    and data folder say: a job that reads its own data (no `directory`, `batch` or `input_size`)."""
    rng = np.random.default_rng(1 if split == "train" else 2)
    return [
        (rng.random((24, 20, 20, 3), dtype=np.float32), np.eye(3, dtype="float32")[rng.integers(0, 3, 24)])
        for _ in range(3)
    ]


def three_class_folder(directory, batch):
    """Reads gpubench's folder (it takes `directory`) but yields one-hot labels of 3 classes: a mistake."""
    return [(_batch(batch)[0], np.eye(3, dtype="float32")[np.arange(batch) % 3]) for _ in range(2)]
