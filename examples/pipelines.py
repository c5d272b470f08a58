"""Input pipelines a user might point gpubench at with --set pipeline=examples.pipelines:<name>.
Each is called for each split with the parameters it names: gpubench gives `batch`, `split`,
`directory` (the split's image folder), `classes`, `input_size`, and sweeps the loader knobs it
names (`workers`, `use_multiprocessing`, `max_queue_size`, ...); the others it refuses."""

from pathlib import Path

import numpy as np


def _files(directory):
    classes = sorted(p.name for p in Path(directory).iterdir() if p.is_dir())
    files = sorted(Path(directory).glob("*/*.jpg"))
    return [str(f) for f in files], [classes.index(f.parent.name) for f in files], len(classes)


def tfdata_images(directory, batch, workers, max_queue_size, input_size):
    """The usual tf.data image pipeline: decode and resize in parallel, batch, prefetch."""
    import tensorflow as tf

    files, labels, classes = _files(directory)

    def load(path, label):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        image = tf.image.resize(image, (input_size, input_size)) / 255.0
        return image, tf.one_hot(label, classes)

    ds = tf.data.Dataset.from_tensor_slices((files, labels)).shuffle(len(files))
    ds = ds.map(load, num_parallel_calls=workers or tf.data.AUTOTUNE).batch(batch)
    return ds.prefetch(max_queue_size or tf.data.AUTOTUNE)


def pydataset_images(directory, batch, workers, use_multiprocessing, max_queue_size, input_size):
    """A keras.utils.PyDataset, the Keras 3 way to feed fit from Python with loader workers."""
    import keras
    from PIL import Image

    files, labels, classes = _files(directory)
    onehot = np.eye(classes, dtype="float32")[labels]

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return -(-len(files) // batch)

        def __getitem__(self, i):
            picked = range(i * batch, min((i + 1) * batch, len(files)))
            x = np.stack(
                [
                    np.asarray(Image.open(files[j]).convert("RGB").resize((input_size, input_size)), dtype="float32")
                    / 255.0
                    for j in picked
                ]
            )
            return x, onehot[list(picked)]

    return Batches(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)


def dataloader_images(directory, batch, workers, input_size):
    """A torch DataLoader, as a PyTorch user writes it."""
    import torch
    from PIL import Image

    files, labels, classes = _files(directory)

    class Files(torch.utils.data.Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, j):
            image = np.asarray(Image.open(files[j]).convert("RGB").resize((input_size, input_size)), dtype="float32")
            return (
                torch.from_numpy(image / 255.0),
                torch.nn.functional.one_hot(torch.tensor(labels[j]), classes).float(),
            )

    return torch.utils.data.DataLoader(Files(), batch_size=batch, shuffle=True, num_workers=workers)


def random_images(batch, classes, input_size, split):
    """A plain generator of random (images, one-hot labels): any iterable of (x, y) batches."""
    rng = np.random.default_rng(0 if split == "train" else 1)
    for _ in range(8):
        labels = rng.integers(0, classes, batch)
        yield rng.random((batch, input_size, input_size, 3), dtype=np.float32), np.eye(classes, dtype="float32")[labels]


def token_batches(batch):
    """Not images: 32 token ids and a class number per example, for examples.models:token_classifier."""
    rng = np.random.default_rng(0)
    return [
        (rng.integers(0, 1000, (batch, 32)).astype("int32"), rng.integers(0, 2, batch).astype("int32"))
        for _ in range(6)
    ]


def failing(batch):
    """A mistake: raises when called."""
    raise RuntimeError("the data server is unreachable")


def directory_images(directory, batch, input_size, split):
    """Keras's own loader for an image folder, as most Keras tutorials start: float32 pixels in
    [0, 255], one-hot labels, shuffled for training."""
    import keras

    return keras.utils.image_dataset_from_directory(
        directory,
        label_mode="categorical",
        batch_size=batch,
        image_size=(input_size, input_size),
        shuffle=split == "train",
        seed=0,
        verbose=False,
    )
