"""Wall-clock timing of fit: a warm-up, then a measured window, from Keras callback hooks.

The warm-up compiles the step, starts the loader and drains the batches it readied meanwhile:
where steps are marked (a pipeline's runs), it is the first `warmup_steps` steps of the first
epoch, and the window opens at the next; elsewhere (tensors in memory, timed by epoch hooks
alone) and where the first pass fills a cache, it is the whole first epoch. Every rate is taken
over the window. Validation and checkpoints come after an epoch's steps and are timed apart, so a
window is the time its training steps took.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from bench.run import backends


class EpochTimer(keras.callbacks.Callback):
    """Times each epoch, its steps and the validation after them from epoch-level hooks only:
    nothing runs per step, so fit dispatches its steps as a plain fit does. The steps' end and
    the epoch's end wait for the device, so the times are real times. `clock` is injectable so
    tests are deterministic."""

    warmup_steps: int | None = None  # a step timer's: the first epoch's steps before the window
    marks: tuple = ()  # a step timer's marks; none from epoch hooks

    def __init__(self, clock=time.perf_counter):
        super().__init__()
        self.clock = clock
        self.begins: list[float] = []
        self.ends: list[float] = []
        self.steps_ends: list[float | None] = []  # when the epoch's steps were done, where validation followed
        self.val_s: list[float] = []
        self.train_begin = self.train_end = None

    def on_train_begin(self, logs=None):
        self.train_begin = self.clock()

    def on_epoch_begin(self, epoch, logs=None):
        self.begins.append(self.clock())
        self._val, self._steps_end = 0.0, None

    def on_test_begin(self, logs=None):
        if self._steps_end is None:  # validation after the epoch's steps
            self._wait_for_device()
            self._steps_end = self.clock()
        self._val_start = self.clock()

    def on_test_end(self, logs=None):
        self._val += self.clock() - self._val_start

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(self.clock())
        self.val_s.append(self._val)
        self.steps_ends.append(self._steps_end)

    def on_train_end(self, logs=None):
        self.train_end = self.clock()

    def _wait_for_device(self) -> None:
        """Reads the optimizer's step count, which the last step writes. With asynchronous
        dispatch (JAX; torch and TensorFlow on GPUs) the steps can still be running when
        validation begins; without the wait, their tail would be timed as validation (measured
        on JAX: a fifth of a short epoch's steps). A plain fit waits there too, a moment later,
        when it reads the epoch's metrics."""
        optimizer = getattr(self.model, "optimizer", None) if self.model is not None else None
        if optimizer is not None:
            keras.ops.convert_to_numpy(optimizer.iterations.value)

    def spans(self, checkpoint_s: list[float] | None = None) -> list[tuple[float, float]]:
        """(start, end) of each epoch's training steps: up to the validation that follows them,
        or without validation the epoch less its checkpoint."""
        checkpoint_s = checkpoint_s or [0.0] * len(self.ends)
        return [
            (b, s if s is not None else e - c)
            for b, s, e, c in zip(self.begins, self.steps_ends, self.ends, checkpoint_s)
        ]

    def window(self, checkpoint_s: list[float] | None = None) -> list[tuple[float, float]]:
        """The measured window's spans, one for each epoch it holds steps of."""
        spans = self.spans(checkpoint_s)
        return [(self.marks[i][first] if first else spans[i][0], spans[i][1]) for i, first in self._window_parts()]

    def _window_parts(self) -> list[tuple[int, int]]:
        """(epoch, its first step in the window): from step `warmup_steps` of the first epoch where it
        has more (a step timer's marks), else every epoch after the first (the only one if alone)."""
        k = self.warmup_steps
        if k is not None and self.marks and len(self.marks[0]) > k:
            return [(0, k)] + [(i, 0) for i in range(1, len(self.ends))]
        return [(i, 0) for i in self._window_epochs()]

    def summary(self, steps: int, images: int, checkpoint_s: list[float] | None = None, hosts: int = 1) -> dict:
        """The window's rates, and what came before it. `steps` and `images` are one epoch's, as
        planned: where the pipeline counted the images its batches held (this process's share of
        `hosts`), the count is taken instead. compile_s is the warm-up's time beyond as many steps at
        the window's step time (and the first validation's beyond the later ones'), less the loader's start."""
        checkpoint_s = checkpoint_s or [0.0] * len(self.ends)
        spans = self.spans(checkpoint_s)
        window = self.window(checkpoint_s)
        window_s = sum(end - start for start, end in window)
        warm = self._window_parts()[0][1] or (steps if len(spans) > 1 else 0)
        window_steps = steps * len(spans) - warm
        planned = images * len(window) if warm in (0, steps) else round(images * window_steps / steps)
        window_images = hosts * (self._counted_images() or 0) or planned
        out = {
            "total_s": self.train_end - self.train_begin,
            "first_epoch_s": self.ends[0] - self.begins[0],
            "epoch_s_median": float(np.median([self.ends[i] - self.begins[i] for i in self._window_epochs()])),
            "val_s_total": float(sum(self.val_s)),
            "checkpoint_s_total": float(sum(checkpoint_s)),
            "window_s": window_s,
            "window_steps": window_steps,
            "window_images": window_images,
            "train_images_per_epoch": window_images * steps / window_steps,
            "train_img_s": window_images / window_s,
            "step_ms_mean": 1000.0 * window_s / window_steps,
            "warmup_s": window[0][0] - self.train_begin if warm else 0.0,
            "warmup_steps": warm,
            "epochs_timed": len(spans),
            **self._steps(),
        }
        loader_start = out.get("loader_start_s") or 0.0
        if warm:
            warm_train = window[0][0] - spans[0][0] if warm < steps else spans[0][1] - spans[0][0]
            extra_val = self.val_s[0] - float(np.median(self.val_s[1:])) if len(spans) > 1 else 0.0
            out["compile_s"] = max(0.0, warm_train - warm * window_s / window_steps + extra_val - loader_start)
        else:
            out["compile_s"] = None
        return out

    def _window_epochs(self) -> range:
        return range(1, len(self.ends)) if len(self.ends) > 1 else range(len(self.ends))

    def _steps(self) -> dict:
        """Per-step figures: none from epoch-level hooks."""
        return {}

    def _counted_images(self) -> int | None:
        """The images the window's batches held, where the pipeline counted them: none from epoch hooks."""
        return None


class StepTimer(EpochTimer):
    """Also marks when the training loop turns to each batch, and reads when the pipeline had it
    ready (`ready`, a pipelines.feed.ReadyClock): the wait for data per step, measured. TensorFlow and
    JAX fetch a batch inside the step, right after its begin hook, the mark. No end hook: Keras
    would then read every step's loss, making a JAX or torch fit wait for the device every step."""

    def __init__(self, ready, clock=time.perf_counter, warmup_steps: int | None = None):
        super().__init__(clock)
        self.ready = ready
        self.warmup_steps = warmup_steps  # None: the whole first epoch
        self.marks: list[list[float]] = []  # per epoch: when the loop turned to batch i
        self.readies: list[list[float]] = []  # per epoch: when batch i was ready
        self.counted: list[list[int]] = []  # per epoch: the images batch i held (0: not counted)

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self.marks.append([])
        self.readies.append([])
        self.counted.append([])

    def on_train_batch_begin(self, batch, logs=None):
        self._mark(batch)

    def _mark(self, batch: int) -> None:
        """The loop turns to `batch`: the one before it has been consumed, so its stamp is final
        (read now, before a later epoch's batch of the same number overwrites it)."""
        self.marks[-1].append(self.clock())
        if batch > 0:
            self._read_back(batch - 1)

    def _read_back(self, batch: int) -> None:
        """The clock's arrays read in place: no call into gpubench a step beyond the hook and the mark."""
        slot = batch % len(self.ready.times)
        self.readies[-1].append(self.ready.times[slot])
        self.counted[-1].append(self.ready.sizes[slot])

    def on_epoch_end(self, epoch, logs=None):
        consumed = len(self.marks[-1])
        if len(self.readies[-1]) < consumed:  # the epoch's last batch
            self._read_back(consumed - 1)
        super().on_epoch_end(epoch, logs)

    def _steps(self) -> dict:
        """Step times run from one mark to the next (the last to the end of the epoch's steps); a batch
        ready after its mark made the step wait the difference; each epoch's first wait is its start."""
        ends = [end for _, end in self.spans()]
        steps, waits, starts = [], [], []
        for marks, readies, end in zip(self.marks, self.readies, ends):
            spans = np.diff(marks + [end])
            wait = np.maximum(0.0, np.array(readies[: len(marks)]) - np.array(marks[: len(readies)]))
            steps.append(spans)
            waits.append(wait)
            starts.append(float(wait[0]) if len(wait) else 0.0)
        parts = self._window_parts()
        step_ms = 1000.0 * np.concatenate([steps[i][first:] for i, first in parts])
        waited = np.concatenate([waits[i][max(first, 1) :] for i, first in parts])  # each epoch's first: its start
        spent = float(sum(steps[i][max(first, 1) :].sum() for i, first in parts))
        epoch_start = float(np.median([starts[i] for i in self._window_epochs()]))
        loader_start = starts[0]
        if backends.of(keras.backend.backend()).FETCH_IN_TRACE and len(starts) > 1:
            # the loader starts when the traced step first asks for a batch: the first wait holds the
            # trace too; its part beyond a later epoch's start is compile (summary books it there)
            loader_start = min(starts[0], epoch_start)
        return {
            "step_ms_p50": float(np.percentile(step_ms, 50)),
            "step_ms_p90": float(np.percentile(step_ms, 90)),
            "data_wait_frac": float(waited.sum()) / spent if spent else None,
            "data_wait_ms_p50": 1000.0 * float(np.percentile(waited, 50)) if len(waited) else None,
            "epoch_start_s_median": epoch_start,
            "loader_start_s": loader_start,
        }

    def _counted_images(self) -> int | None:
        """The window's images as its batches held them, where every one was counted."""
        counts = [n for i, first in self._window_parts() for n in self.counted[i][first:]]
        return sum(counts) if counts and all(counts) else None


class FetchFirstStepTimer(StepTimer):
    """For Keras's torch trainer, which fetches the next batch before the step's begin hook, right
    after the step before ends: the marks are the epoch's begin and each step's end. The end hook
    makes Keras read each step's logs, so a torch fit here waits for the device every step; on
    torch every run, the model alone on tensors in memory too, is timed by this timer, so that a
    pipeline run and its ceiling are synchronised alike."""

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._mark(0)

    def on_train_batch_begin(self, batch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        self._mark(batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        self.marks[-1].pop()  # the last step's end: no batch follows it in this epoch
        super().on_epoch_end(epoch, logs)


class InMemory:
    """Tensors in memory's ready stamps: every batch ready before its turn, not counted (the plan's count stands)."""

    times, sizes = (float("-inf"),), (0,)


def timer_for(backend: str, ready, warmup_steps: int | None = None) -> EpochTimer:
    """Step marks for a pipeline where the backend's trainer fetches, the window opening after
    `warmup_steps` (None: the first epoch); epoch hooks for tensors in memory, except where the trainer
    fetches before the step's hook (torch), whose pipeline timer makes every step wait for the device:
    its ceilings are timed alike."""
    if backends.of(backend).FETCHES_BEFORE_STEP_HOOK:
        return FetchFirstStepTimer(InMemory() if ready is None else ready, warmup_steps=warmup_steps)
    return EpochTimer() if ready is None else StepTimer(ready, warmup_steps=warmup_steps)
