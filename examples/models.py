"""Model functions a user might point gpubench at with --set backbone=examples.models:<name>."""

import keras


def small_cnn(input_shape, classes):
    """A small image classifier, compiled by its author: gpubench keeps the Adam optimizer, the
    loss and the metrics it was compiled with."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name="small_cnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def token_classifier():
    """Not an image model: 32 token ids (a vocabulary of 1,000) to 2 classes, trained on class
    numbers (a sparse loss). Takes no arguments: its shapes are its own."""
    tokens = keras.Input((32,), dtype="int32")
    x = keras.layers.Embedding(1000, 16)(tokens)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", dtype="float32")(x)
    model = keras.Model(tokens, outputs, name="token_classifier")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def not_a_model():
    """A mistake: returns something other than a keras.Model."""
    return "model"
