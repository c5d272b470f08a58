"""A known wait for data, injected into a known share of batches, and what the step timer finds.

Every pipeline stamps a batch's readiness through pipelines.feed.ReadyClock.mark, in the loader's
thread or process. DelayedClock holds the odd batches back `delay` seconds there, under one
lock so that parallel workers cannot overlap their delays: the steps then wait about
(delayed batches x delay) in all, on the delayed batches' steps, which dominates everything else
a step does here (the `null` model on 32 px images, a few ms). Run in-process on this process's backend, or as
`python -m tests.data_wait TREE KNOBS_JSON PIPELINE...` under another KERAS_BACKEND: one line of
JSON, each pipeline's measure by its name.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time

from pipelines.feed import ReadyClock
from pipelines.registry import PIPELINES

STEPS = 6
DELAY_S = 0.4


class DelayedClock(ReadyClock):
    """Odd batches are ready DELAY_S later than the pipeline had them."""

    def __init__(self, steps: int):
        super().__init__(steps)
        self.lock = multiprocessing.Lock()

    def mark(self, batch: int) -> None:
        """Marks an odd batch ready DELAY_S late, an even one as the pipeline had it."""
        if batch % 2 == 1:
            with self.lock:
                time.sleep(DELAY_S)
                super().mark(batch)
        else:
            super().mark(batch)


def measure(tree, pipeline: str, knobs: dict | None = None) -> dict:
    """One fit of 2 epochs of STEPS batches with the odd ones delayed, measured over the second:
    the timer's data_wait_frac beside the share of the steps' time (after the epoch's first) that
    the injected delays took, and the injected seconds beside the wait the timer found on the
    delayed batches' steps."""
    import importlib

    import keras

    from bench.plan.grid import one_point

    spec = one_point(
        {
            "pipeline": pipeline,
            "backbone": "null",
            "input_size": 32,
            "batch": 2,
            "epochs": 2,
            "steps_per_epoch": STEPS,
            "validation_steps": 1,
            "window": "epochs",
            "backend": keras.backend.backend(),
            **(knobs or {}),
        }
    )
    module = importlib.import_module(PIPELINES[pipeline].module)
    module.ReadyClock, clock = DelayedClock, module.ReadyClock
    try:
        return _fit(tree, spec)
    finally:
        module.ReadyClock = clock


def _fit(tree, spec) -> dict:
    import models
    from bench.run import devices, training
    from bench.run.timing import timer_for
    from pipelines.dataset import scan

    index = scan(tree)
    scope, _ = devices.setup(spec.backend, 1)
    train_feed, val_feed = training.feeds(index, spec)
    with scope:
        model = training.compile_model(models.build("null", (32, 32, 3), len(index.classes)))
    timer = timer_for(spec.backend, train_feed.ready)
    training.fit(model, train_feed, val_feed, spec.epochs, [timer])
    summary = timer.summary(train_feed.steps, train_feed.images)
    window = range(1, spec.epochs)  # each epoch's first wait is its start, kept apart
    delayed = [i for i in range(1, STEPS) if i % 2 == 1]
    found = sum(max(0.0, timer.readies[e][i] - timer.marks[e][i]) for e in window for i in delayed)
    spent = summary["window_s"] - sum(timer.marks[e][1] - timer.marks[e][0] for e in window)
    return {
        "data_wait_frac": summary["data_wait_frac"],
        "injected_frac": len(delayed) * len(window) * DELAY_S / spent,
        "injected_s": len(delayed) * len(window) * DELAY_S,
        "found_on_delayed_s": found,
    }


if __name__ == "__main__":
    tree, knobs, pipelines = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
    from bench.run import devices

    devices.prepare(knobs.get("backend", "tensorflow"), 1, ("tensorflow",) if "tfdata" in pipelines else ())
    print(json.dumps({pipeline: measure(tree, pipeline, knobs) for pipeline in pipelines}))
