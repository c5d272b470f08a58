"""The loader PyTorch users pick: a torch.utils.data.DataLoader over the same files, labels,
resize and scaling as the keras pipeline, which Keras 3's fit takes on every backend."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from pipelines.batches import BatchOrder, onehot
from pipelines.epochs import split_plan
from pipelines.feed import Feed, ReadyClock, trains_on
from pipelines.reader import ImageReader
from pipelines.registry import prefetch_factor


class ImageFiles(Dataset):
    """One (image, one-hot label, batch number) per key (batch number, file number): the batch
    number rides along so that the collate can stamp when its batch was ready."""

    def __init__(self, read: ImageReader, labels, classes: int):
        self.read, self.onehot = read, onehot(labels, classes)

    def __len__(self):
        return len(self.read.files)

    def __getitem__(self, key):
        batch, j = key
        return self.read(j), self.onehot[j], batch


class Batches(Sampler):
    """The keys of each batch in the keras pipeline's order; a new epoch's first iteration
    moves the order on, as the keras pipeline's on_epoch_end does."""

    def __init__(self, plan: BatchOrder, steps: int):
        self.plan, self.steps, self.started = plan, steps, False

    def __len__(self):
        return self.steps

    def __iter__(self):
        if self.started:
            self.plan.next_epoch()
        self.started = True
        for i in range(self.steps):
            yield [(i, int(j)) for j in self.plan.files(i)]


class StampedCollate:
    """torch's default collate, then the batch's ready time (in the worker that made it)."""

    def __init__(self, ready: ReadyClock | None):
        self.ready = ready

    def __call__(self, items):
        x, y, batch = default_collate(items)
        if self.ready is not None:
            self.ready.mark(int(batch[0]))
        return x, y


def build(index, spec, split: str) -> Feed:
    """The torch DataLoader feed for `split`, in the keras pipeline's batch order, its workers kept across epochs."""
    steps, images = split_plan(index.count(split), spec, split)
    train = split == "train"
    ready = ReadyClock(steps) if train else None
    plan = BatchOrder(index.count(split), spec.batch, images, shuffle=train)
    read = ImageReader(index.files[split], spec.input_size, spec.interpolation, spec.transfer, bool(spec.cache))
    files = ImageFiles(read, index.labels[split], len(index.classes))
    workers = spec.workers or 0
    loader = DataLoader(
        files,
        batch_sampler=Batches(plan, steps),
        collate_fn=StampedCollate(ready),
        num_workers=workers,
        prefetch_factor=prefetch_factor(workers, spec.max_queue_size) if workers else None,
        persistent_workers=workers > 0,
        pin_memory=trains_on(spec, "torch") and torch.cuda.is_available(),
    )
    return Feed(loader, steps, images, ready)
