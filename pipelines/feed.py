"""What a pipeline hands to `fit` (Feed), and the clock its batches are stamped on when ready
(ReadyClock), which the run's timer reads (bench/run/timing.py), and whether the backend that trains
is a pipeline's own framework (trains_on)."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any, NamedTuple


class ReadyClock:
    """When each batch of the current epoch was ready to hand to the training step.

    Shared memory, so loader processes (use_multiprocessing) can write it too; perf_counter
    is the system's monotonic clock, the same in every process. A step that begins before its
    batch is ready waits for data: that wait is measured, not inferred from rates.
    """

    def __init__(self, steps: int):
        self.times = multiprocessing.RawArray("d", steps)
        self.sizes = multiprocessing.RawArray("l", steps)  # images in each batch, where the pipeline counts them

    def mark(self, batch: int) -> None:
        """Stamp `batch` as ready now (its slot wraps round the epoch's steps)."""
        self.times[batch % len(self.times)] = time.perf_counter()

    def count(self, batch: int, images: int) -> None:
        """Note the images `batch` holds, as handed over (0: not counted, the plan's count stands)."""
        self.sizes[batch % len(self.sizes)] = images


def trains_on(spec, framework: str) -> bool:
    """Whether the backend that trains is `framework`'s (Keras names each backend after its package),
    so that a pipeline of that framework hands its batches over as they are. The one place the ground
    floor reads the backend: a backend's own behaviour lives in bench/run/backends/."""
    return spec.backend == framework


class Feed(NamedTuple):
    """What a pipeline hands to `fit`: the data, its batches and images per epoch (planned; a user
    pipeline's are counted as handed over, on `ready`), (for training) the clock its batches are
    stamped on when ready, and a user pipeline's first batch (its shapes build and check models)."""

    data: Any
    steps: int
    images: int
    ready: ReadyClock | None = None
    first: Any = None
    returned: str = ""  # a user pipeline's: the kind of loader its function returned (registry.RETURNED)
