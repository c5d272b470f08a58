"""The Keras generator path: a PyDataset over the image tree, as flow_from_directory read it."""

from __future__ import annotations

import keras
import numpy as np

from pipelines.batches import BatchOrder, onehot
from pipelines.epochs import split_plan
from pipelines.feed import Feed, ReadyClock
from pipelines.reader import ImageReader


class ImageFolderBatches(keras.utils.PyDataset):
    """Batches of (images, one-hot labels) in the order `plan` gives, each image read by `read`."""

    def __init__(
        self, read: ImageReader, labels, classes, plan: BatchOrder, steps, ready: ReadyClock | None = None, **loader
    ):
        super().__init__(**loader)
        self.read, self.ready = read, ready
        self.onehot = onehot(labels, classes)
        self.plan, self.steps = plan, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, i):
        picked = self.plan.files(i)
        x = np.stack([self.read(j) for j in picked])
        if self.ready is not None:
            self.ready.mark(i)
        return x, self.onehot[picked]

    def on_epoch_end(self):
        self.plan.next_epoch()


def build(index, spec, split: str) -> Feed:
    """The keras (PyDataset) feed for `split`, with the loader knobs Keras's own queue takes."""
    steps, images = split_plan(index.count(split), spec, split)
    ready = ReadyClock(steps) if split == "train" else None
    plan = BatchOrder(index.count(split), spec.batch, images, shuffle=(split == "train"))
    read = ImageReader(index.files[split], spec.input_size, spec.interpolation, spec.transfer, bool(spec.cache))
    data = ImageFolderBatches(
        read,
        index.labels[split],
        len(index.classes),
        plan,
        steps,
        ready=ready,
        workers=spec.workers,
        use_multiprocessing=spec.use_multiprocessing,
        max_queue_size=spec.max_queue_size,
    )
    return Feed(data, steps, images, ready)
