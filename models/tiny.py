"""Two models that cost next to nothing: `tiny`, two convolutions for tests and smoke runs,
and `null`, a linear head on the averaged input pixels, which trains at the rate the input
pipeline delivers batches (the pipeline's ceiling)."""

from __future__ import annotations

import keras

from models import freeze_before, new_head


def build(name: str, input_shape, classes: int, finetune: str):
    """`tiny` (two convolutions) or `null` (nothing but the head on the input pixels), with a new head."""
    inputs = keras.Input(input_shape)
    if name == "null":
        return new_head(inputs, inputs, classes, name)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="block1_conv")(inputs)
    channels = 1 if keras.config.image_data_format() == "channels_first" else -1
    x = keras.layers.BatchNormalization(axis=channels, name="block1_bn")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="block2_conv")(x)
    model = new_head(inputs, x, classes, name)
    freeze_before(model, {"head": "head_pool", "last_block": "block2_", "full": None}[finetune])
    return model
