"""The Keras generator path: a PyDataset over the image tree, as flow_from_directory read it."""

from __future__ import annotations

import numpy as np
import keras

from pipelines import Feed, ReadyClock, split_plan


def load_image(path: str, size: int, interpolation: str) -> np.ndarray:
    """Keras's own reader (PIL underneath), then rescale=1/255, as ImageDataGenerator did."""
    image = keras.utils.load_img(path, target_size=(size, size), interpolation=interpolation)
    return keras.utils.img_to_array(image, dtype="float32") / 255.0


class ImageFolderBatches(keras.utils.PyDataset):
    """Batches of (images, one-hot labels); the order is reshuffled after every epoch when
    `shuffle`, and never otherwise (the seed's rule for validation and test)."""

    def __init__(self, files, labels, classes, batch, size, interpolation, steps, images,
                 shuffle, seed=0, ready: ReadyClock | None = None, **loader):
        super().__init__(**loader)
        self.ready = ready
        self.files = list(files)
        self.onehot = np.eye(classes, dtype="float32")[np.asarray(labels, dtype=int)]
        self.batch, self.size, self.interpolation = batch, size, interpolation
        self.steps, self.images, self.shuffle = steps, images, shuffle
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.files)) if shuffle else np.arange(len(self.files))

    def __len__(self):
        return self.steps

    def __getitem__(self, i):
        positions = np.arange(i * self.batch, min((i + 1) * self.batch, self.images))
        picked = self.order[positions % len(self.files)]
        x = np.stack([load_image(self.files[j], self.size, self.interpolation) for j in picked])
        if self.ready is not None:
            self.ready.mark(i)
        return x, self.onehot[picked]

    def on_epoch_end(self):
        if self.shuffle:
            self.order = self.rng.permutation(len(self.files))


def build(index, spec, split: str) -> Feed:
    steps, images = split_plan(index, spec, split)
    ready = ReadyClock(steps) if split == "train" else None
    data = ImageFolderBatches(
        index.files[split], index.labels[split], len(index.classes), spec.batch, spec.input_size,
        spec.interpolation, steps, images, shuffle=(split == "train"), ready=ready,
        workers=spec.workers, use_multiprocessing=spec.use_multiprocessing,
        max_queue_size=spec.max_queue_size,
    )
    return Feed(data, steps, images, ready)
