"""The Keras generator path: a PyDataset over the image tree, as flow_from_directory read it."""

from __future__ import annotations

import numpy as np
import keras

from pipelines import BatchOrder, Feed, ReadyClock, onehot, split_plan


def load_image(path: str, size: int, interpolation: str) -> np.ndarray:
    """Keras's own reader (PIL underneath), then rescale=1/255, as ImageDataGenerator did."""
    image = keras.utils.load_img(path, target_size=(size, size), interpolation=interpolation)
    return keras.utils.img_to_array(image, dtype="float32") / 255.0


class ImageFolderBatches(keras.utils.PyDataset):
    """Batches of (images, one-hot labels) in the order `plan` gives."""

    def __init__(self, files, labels, classes, plan: BatchOrder, steps, size, interpolation,
                 ready: ReadyClock | None = None, **loader):
        super().__init__(**loader)
        self.ready = ready
        self.files = list(files)
        self.onehot = onehot(labels, classes)
        self.plan, self.steps, self.size, self.interpolation = plan, steps, size, interpolation

    def __len__(self):
        return self.steps

    def __getitem__(self, i):
        picked = self.plan.files(i)
        x = np.stack([load_image(self.files[j], self.size, self.interpolation) for j in picked])
        if self.ready is not None:
            self.ready.mark(i)
        return x, self.onehot[picked]

    def on_epoch_end(self):
        self.plan.next_epoch()


def build(index, spec, split: str) -> Feed:
    steps, images = split_plan(index, spec, split)
    ready = ReadyClock(steps) if split == "train" else None
    plan = BatchOrder(index.count(split), spec.batch, images, shuffle=(split == "train"))
    data = ImageFolderBatches(
        index.files[split], index.labels[split], len(index.classes), plan, steps, spec.input_size,
        spec.interpolation, ready=ready, workers=spec.workers, use_multiprocessing=spec.use_multiprocessing,
        max_queue_size=spec.max_queue_size,
    )
    return Feed(data, steps, images, ready)
