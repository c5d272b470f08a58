"""Layers the models put in front of a backbone."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="gpubench")
class UnitRange(keras.layers.Layer):
    """uint8 pixels to float32 in [0, 1] on the device: x / 255, the division the pipelines make
    when they hand over float32, so that the model sees the same tensor either way."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, x):
        return keras.ops.divide(keras.ops.cast(x, "float32"), 255.0)
