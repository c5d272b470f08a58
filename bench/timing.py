"""Wall-clock timing of fit, as the seed timed it by hand, from Keras callback hooks."""

from __future__ import annotations

import time

import keras
import numpy as np


class TimingCallback(keras.callbacks.Callback):
    """Times every epoch, every train step and the validation inside each epoch.

    A step's time runs from the end of the step before (or the epoch's start) to its own end.
    Keras fetches the next batch inside the step on TensorFlow and JAX but before the step's
    begin hook on torch, so only this span holds the wait for data on every backend. Step ends
    read the loss, which waits for the device: the step time is then the step's real time,
    not the time to enqueue it. `clock` is injectable so tests are deterministic.
    """

    def __init__(self, clock=time.perf_counter, ready=None):
        super().__init__()
        self.clock = clock
        self.ready = ready  # a pipelines.ReadyClock: when each batch was ready
        self.wait_s: list[list[float]] = []  # per epoch, per step: time the step waited for data
        self.start_s: list[float] = []  # per epoch: from epoch begin until the first batch was ready
        self.epoch_s: list[float] = []
        self.val_s: list[float] = []
        self.step_s: list[list[float]] = []  # per epoch
        self.total_s = 0.0

    def on_train_begin(self, logs=None):
        self._train_start = self.clock()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._step_start = self.clock()
        self._val = 0.0
        self.step_s.append([])
        self.wait_s.append([])

    def on_train_batch_end(self, batch, logs=None):
        if logs and "loss" in logs:
            float(logs["loss"])  # synchronise
        end = self.clock()
        self.step_s[-1].append(end - self._step_start)
        if self.ready is not None:  # an epoch's first wait is the loader's start-up: epoch start
            wait = max(0.0, self.ready[batch] - self._step_start)
            (self.start_s if batch == 0 else self.wait_s[-1]).append(wait)
        self._step_start = end

    def on_test_begin(self, logs=None):
        self._val_start = self.clock()

    def on_test_end(self, logs=None):
        self._val += self.clock() - self._val_start

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_s.append(self.clock() - self._epoch_start)
        self.val_s.append(self._val)

    def on_train_end(self, logs=None):
        self.total_s = self.clock() - self._train_start

    def summary(self, images_per_epoch: int, checkpoint_s: list[float] | None = None) -> dict:
        """Steady-state figures leave out the first epoch (graph tracing, worker start-up)
        when there is more than one, and validation and checkpoint time in every epoch."""
        checkpoint_s = checkpoint_s or [0.0] * len(self.epoch_s)
        steady = slice(1, None) if len(self.epoch_s) > 1 else slice(None)
        spent = [e - v - c for e, v, c in zip(self.epoch_s, self.val_s, checkpoint_s)]
        train_s = spent[steady]
        steps_ms = 1000.0 * np.array([s for epoch in self.step_s[steady] for s in epoch])
        return {
            "total_s": self.total_s,
            "first_epoch_s": self.epoch_s[0],
            "epoch_s_median": float(np.median(self.epoch_s[steady])),
            "val_s_total": float(sum(self.val_s)),
            "checkpoint_s_total": float(sum(checkpoint_s)),
            "train_img_s": images_per_epoch * len(train_s) / sum(train_s),
            "step_ms_p50": float(np.percentile(steps_ms, 50)),
            "step_ms_p90": float(np.percentile(steps_ms, 90)),
            "epochs_timed": len(self.epoch_s),
            **self._waits(steady),
        }

    def _waits(self, steady: slice) -> dict:
        """The wait for data over the steps after each epoch's first, whose wait is the
        loader's start-up (epoch_start_s)."""
        if self.ready is None:
            return {}
        waits = [w for epoch in self.wait_s[steady] for w in epoch]
        steps = [s for epoch in self.step_s[steady] for s in epoch[1:]]
        return {
            "data_wait_frac": sum(waits) / sum(steps) if steps else None,
            "data_wait_ms_p50": 1000.0 * float(np.percentile(waits, 50)) if waits else None,
            "epoch_start_s_median": float(np.median(self.start_s[steady])),
        }
