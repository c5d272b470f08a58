"""A user's iterable of batches behind a PyDataset read in the training thread: each batch is
pulled from the source, turned into numpy and stamped as ready at the moment it is handed to fit
(the user's own loader keeps its workers and queue; this adds none)."""

from __future__ import annotations

import keras

from pipelines import ReadyClock
from pipelines.user import to_numpy


class Handover(keras.utils.PyDataset):
    """The user's iterable as a PyDataset for fit: batches handed over one at a time, restarted when it runs out."""

    def __init__(self, data, restart, steps: int, ready: ReadyClock | None):
        super().__init__(workers=0)
        self.restart, self.steps, self.ready = restart, steps, ready
        self.source = iter(data)
        self.first = None

    def __len__(self):
        return self.steps

    def peek(self):
        """The first batch, kept to be handed over first: its shapes build and check the models."""
        if self.first is None:
            self.first = self._next()
        return self.first

    def _next(self):
        try:
            return to_numpy(next(self.source))
        except StopIteration:  # the source's pass ended: start another
            self.source = iter(self.restart())
            return to_numpy(next(self.source))

    def __getitem__(self, i):
        batch, self.first = (self.first, None) if self.first is not None else (self._next(), None)
        if self.ready is not None:
            self.ready.mark(i)
        return batch
