"""Which files each batch holds, and its labels: shared by the pipelines that read files in
batches (keras, torch) and the fine-tuning workflow, so all read the same files in the same order."""

from __future__ import annotations

import numpy as np


def onehot(labels, classes: int) -> np.ndarray:
    """float32 one-hot rows, what categorical_crossentropy takes (flow_from_directory's 'categorical')."""
    return np.eye(classes, dtype="float32")[np.asarray(labels, dtype=int)]


class BatchOrder:
    """Which files each batch of an epoch holds, shared by the keras and torch pipelines so
    that both read the same files in the same order. Training reshuffles after every epoch, and
    each pass of an epoch longer than one pass (wrapping round the images) has its own order, as
    tf.data's shuffle-then-repeat gives; validation never reshuffles (the seed's rule)."""

    def __init__(self, count: int, batch: int, images: int, shuffle: bool, seed: int = 0):
        self.count, self.batch, self.images, self.shuffle = count, batch, images, shuffle
        self.rng = np.random.default_rng(seed)
        self.order = self._order()

    def files(self, i: int) -> np.ndarray:
        """File numbers of batch i; an epoch longer than one pass wraps round, each pass in its own order."""
        positions = np.arange(i * self.batch, min((i + 1) * self.batch, self.images))
        return self.order[positions]

    def next_epoch(self) -> None:
        """Reshuffle for the next epoch, when training: validation keeps its order."""
        if self.shuffle:
            self.order = self._order()

    def _order(self) -> np.ndarray:
        """Every pass of an epoch end to end: each a permutation of the files when training, else in order."""
        passes = max(1, -(-self.images // self.count))
        if self.shuffle:
            return np.concatenate([self.rng.permutation(self.count) for _ in range(passes)])
        return np.tile(np.arange(self.count), passes)
