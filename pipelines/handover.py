"""A user's pipeline handed to fit as the kind it is, each training batch stamped ready and its
images counted as it goes, nothing copied and nothing the user set changed:

- a PyDataset goes as itself: the same instance, its class swapped for a subclass made here whose
  __getitem__ calls the user's and stamps, so its workers (threads or forked processes, which
  stamp into shared memory), queue and on_epoch_end stay the user's;
- a tf.data dataset goes as a tf.data dataset, with one sequential map after the user's last step
  that stamps a batch as it leaves the user's prefetch (the time the step waited for it);
- a torch DataLoader goes as itself, stamped as each batch leaves it in the training process;
- any other iterable (a generator, a list) is pulled one batch at a time in the training thread,
  as Keras takes a generator, and started again when it runs out.

An epoch longer than the source's pass wraps round it (a PyDataset's on_epoch_end runs at the end
of fit's epoch); a shorter source is never cut."""

from __future__ import annotations

import sys

import keras

from pipelines.feed import ReadyClock


def keras_leaf(tensors):
    """The first tensor of a structure of them (a tuple or dict of inputs), or the tensor itself."""
    return keras.tree.flatten(tensors)[0]


def images_in(batch) -> int:
    """Examples in a batch: the leading dimension of its first input."""
    return int(keras_leaf(batch[0]).shape[0])


def to_numpy(batch):
    """A batch as numpy arrays in tuples and dicts, whatever framework made it."""
    import numpy as np

    if isinstance(batch, list):
        batch = tuple(batch)

    def leaf(t):
        if hasattr(t, "detach"):  # torch
            return t.detach().cpu().numpy()
        return t.numpy() if hasattr(t, "numpy") else np.asarray(t)

    return keras.tree.map_structure(leaf, batch)


def length(data) -> int | None:
    """Batches in one pass of `data`, where it says (len, or tf.data's cardinality)."""
    if hasattr(data, "cardinality"):
        n = int(data.cardinality())
        return n if n >= 0 else None
    try:
        return len(data)
    except TypeError:
        return None


def _stamp(ready: ReadyClock | None, i: int, batch) -> None:
    if ready is not None:
        ready.mark(i)
        ready.count(i, images_in(batch))


def _renamed(cls, base):
    cls.__name__, cls.__qualname__, cls.__module__ = base.__name__, base.__qualname__, base.__module__
    return cls


def stamped_pydataset(data, steps: int, ready: ReadyClock | None):
    """The user's PyDataset itself, `steps` batches an epoch, each stamped in the worker that loads it."""
    base, passes = type(data), data.num_batches

    class Stamped(base):
        @property
        def num_batches(self):
            return steps

        def __len__(self):
            return steps

        def __getitem__(self, i):
            batch = base.__getitem__(self, i % passes if passes else i)
            _stamp(ready, i, batch)
            return batch

    data.__class__ = _renamed(Stamped, base)
    return data


def stamped_tfdata(data, steps: int, ready: ReadyClock | None):
    """The user's dataset, repeated to `steps` batches an epoch where a pass is shorter, then stamped."""
    from pipelines.tfdata import stamped

    if length(data) != steps:
        data = data.repeat().take(steps)
    return data if ready is None else stamped(data, ready)


def stamped_dataloader(loader, steps: int, ready: ReadyClock | None):
    """The user's DataLoader itself, `steps` batches an epoch (its sampler's passes one after another)."""
    base = type(loader)

    class Stamped(base):
        def __len__(self):
            return steps

        def __iter__(self):
            i = 0
            while True:
                for batch in base.__iter__(self):
                    if i == steps:
                        return
                    _stamp(ready, i, batch)
                    i += 1
                    yield batch

    loader.__class__ = _renamed(Stamped, base)
    return loader


class Handover(keras.utils.PyDataset):
    """Any other iterable of batches for fit: pulled one at a time in the training thread, restarted
    when it runs out (a one-shot generator by calling its function again: `call_again`). Its epoch's
    steps and clock are set when it is handed over, once its first batch has said its size."""

    def __init__(self, data, call_again):
        super().__init__(workers=0)
        self.steps, self.ready = 0, None
        self.source = iter(data)
        self.restart = call_again if self.source is data else (lambda: data)
        self.first = self._next()  # kept to be handed over first

    def __len__(self):
        return self.steps

    def _next(self):
        try:
            return to_numpy(next(self.source))
        except StopIteration:  # the source's pass ended: start another
            self.source = iter(self.restart())
            return to_numpy(next(self.source))

    def __getitem__(self, i):
        batch, self.first = (self.first, None) if self.first is not None else (self._next(), None)
        _stamp(self.ready, i, batch)
        return batch


def opened(data, call_again):
    """(what to hand over of the user's `data`, its first batch as numpy): the first batch says the
    job's batch size, shapes and labels before the epoch is planned; a generator's is kept, not lost."""
    tf, torch = sys.modules.get("tensorflow"), sys.modules.get("torch")  # loaded where the user's code made one
    if isinstance(data, keras.utils.PyDataset):
        return data, to_numpy(data[0])
    if tf is not None and isinstance(data, tf.data.Dataset):
        return data, to_numpy(next(iter(data.take(1))))
    if torch is not None and isinstance(data, torch.utils.data.DataLoader):
        return data, to_numpy(next(iter(data)))
    handover = Handover(data, call_again)
    return handover, handover.first


def hand_over(data, steps: int, ready: ReadyClock | None):
    """What fit takes for `data` (as `opened` gave it), `steps` batches an epoch, stamped on `ready`."""
    if isinstance(data, Handover):
        data.steps, data.ready = steps, ready
        return data
    if isinstance(data, keras.utils.PyDataset):
        return stamped_pydataset(data, steps, ready)
    if hasattr(data, "cardinality"):  # a tf.data dataset
        return stamped_tfdata(data, steps, ready)
    return stamped_dataloader(data, steps, ready)
