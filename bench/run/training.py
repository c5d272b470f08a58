"""Training the seed's way, one code path for the benchmark worker and the train command."""

from __future__ import annotations

import time
from pathlib import Path

import keras

import pipelines
from pipelines.feed import Feed
from pipelines.registry import describe

LEARNING_RATE = 1e-3


JIT_COMPILE = {"auto": "auto", "on": True, "off": False}


def compile_model(model, learning_rate: float = LEARNING_RATE, xla: str = "auto"):
    """The seed's optimizer and loss; a model that came compiled (a user's) keeps its own
    optimizer, loss and metrics, and only jit_compile changes."""
    if getattr(model, "compiled", False) and model.get_compile_config():
        model.compile_from_config({**model.get_compile_config(), "jit_compile": JIT_COMPILE[xla]})
        return model
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=JIT_COMPILE[xla],
    )
    return model


class TimedCheckpoint(keras.callbacks.ModelCheckpoint):
    """Keeps the model with the best validation accuracy (the seed's rule) and times each
    epoch's check and save, so that checkpointing can be told apart from training."""

    def __init__(self, path: str | Path, best_only: bool = True, best: float | None = None):
        super().__init__(
            str(path), monitor="val_accuracy", mode="max", save_best_only=best_only, initial_value_threshold=best
        )
        self.seconds: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        super().on_epoch_end(epoch, logs)
        self.seconds.append(time.perf_counter() - start)


def workflow_callbacks(out: Path, tensorboard: bool = False, best: float | None = None) -> tuple[list, TimedCheckpoint]:
    """The seed's train.py callbacks: learning rate halved after 10 epochs without a better
    validation loss (first, so that the log shows it), best model by validation accuracy, the
    last model (to resume from), a CSV log, TensorBoard on request. Also returns the best-model
    checkpoint, whose time is reported apart. `best`: the validation accuracy a resumed run must
    beat to replace best.keras."""
    checkpoint = TimedCheckpoint(out / "best.keras", best=best)
    callbacks = [
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=10),
        checkpoint,
        keras.callbacks.ModelCheckpoint(str(out / "last.keras")),
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=True),
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(out / "tensorboard")))
    return callbacks, checkpoint


def feeds(index, spec) -> tuple[Feed, Feed]:
    """The train and val feeds from the spec's pipeline, for the worker and the train command alike;
    a pipeline that decodes on the device is told where the backend trains."""
    from bench.run.doctor import where

    platform = where(spec.backend)["platform"] if describe(spec.pipeline).on_device else "cpu"
    return pipelines.build(index, spec, "train", platform), pipelines.build(index, spec, "val", platform)


def fit(model, train_feed, val_feed, epochs: int, callbacks: list, initial_epoch: int = 0, verbose: int = 0):
    """`epochs` more epochs, counted on from `initial_epoch` (logs and schedules go on).

    shuffle=False: the pipelines shuffle their own files every epoch. With a PyDataset, Keras's
    shuffle would ask for the batches in another order than the one the pipelines stamp their
    readiness in, and the step timer would pair each step with another batch's stamp."""
    return model.fit(
        train_feed.data,
        validation_data=val_feed.data,
        epochs=initial_epoch + epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,
    )
