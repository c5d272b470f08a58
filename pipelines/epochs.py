"""The epoch and window policy: how many batches and images an epoch of a split holds, and how
long the measured window must be for the loader's depth (its workers and queue)."""

from __future__ import annotations

import math

from pipelines.registry import describe


def epoch_plan(count: int, batch: int, steps: int) -> tuple[int, int]:
    """(batches, images) in one epoch. Steps 0 means one pass with a short last batch, which
    is what the seed's steps_per_epoch always came to; more steps wrap round the images."""
    one_pass = math.ceil(count / batch)
    if steps in (0, one_pass):
        return one_pass, count
    return steps, steps * batch


MIN_WINDOW_STEPS = 50


def loader_depth(spec) -> int:
    """Batches the loader has in hand at once: its workers' and its queue's, of the knobs its
    pipeline takes. A loader that loads as training asks (its descriptor's `in_training_thread`: a PyDataset
    by Keras's rule, a DataLoader without workers) holds none; tensors in memory need none."""
    try:
        pipeline = describe(spec.pipeline)
    except (KeyError, ValueError):
        return 0
    if pipeline.in_training_thread and pipeline.in_training_thread(spec):
        return 0
    return sum(getattr(spec, knob) or 0 for knob in ("workers", "max_queue_size") if knob in pipeline.knobs)


def window_steps(spec) -> int:
    """The fewest steps a measured window spans: 50, and four times the loader's depth, so that
    the window sees the loader's throughput rather than the refill of an empty queue."""
    return max(MIN_WINDOW_STEPS, 4 * loader_depth(spec))


WARM_STEPS = 5


def warmup_steps(spec) -> int | None:
    """The first epoch's steps before the measured window opens: the one that compiles, the loader's
    depth (the batches it readied meanwhile, drained faster than it makes them), then WARM_STEPS
    steady ones. None, the whole first epoch, where the first pass fills a cache."""
    return None if spec.cache else 1 + loader_depth(spec) + WARM_STEPS


def split_plan(count: int, spec, split: str) -> tuple[int, int]:
    """epoch_plan for one split of `count` images, with the steps the spec asks of it. With
    window=auto, training epochs are lengthened (wrapping round the images) until the epochs after
    the first, the measured window, span window_steps(spec)."""
    requested = spec.steps_per_epoch if split == "train" else spec.validation_steps
    steps, images = epoch_plan(count, spec.batch, requested)
    if split == "train" and spec.window == "auto" and spec.epochs > 1:
        needed = math.ceil(window_steps(spec) / (spec.epochs - 1))
        if steps < needed:
            return needed, needed * spec.batch
    return steps, images
