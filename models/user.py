"""A model the user brings: `--set backbone=path/to/model.keras` (a saved Keras model) or
`--set backbone=package.module:function` (called with input_shape and classes where it names
them). Checked without importing a framework (the file exists, the function is defined); the
real load happens in the run, whose error row says what went wrong."""

from __future__ import annotations

import importlib
from pathlib import Path


def is_user_model(name: str) -> bool:
    """A .keras file or package.module:function: a model the user brought, not a shipped backbone."""
    return name.endswith(".keras") or ":" in name


def problem(name: str) -> str | None:
    """Why `name` cannot be a model, found without importing Keras, or None."""
    if name.endswith(".keras"):
        return None if Path(name).is_file() else f"backbone {name}: no such file"
    from pipelines.signature import parameters

    try:
        names, required = parameters(name, "backbone")
    except ValueError as e:
        return str(e)
    unknown = [n for n in required if n not in ("input_shape", "classes")]
    if unknown:
        return f"backbone {name} needs {', '.join(unknown)}; a model function may take input_shape and classes only"
    return None


def build(name: str, input_shape, classes: int):
    """The user's keras.Model: loaded with its compile settings, or returned by their function."""
    import keras

    from pipelines.signature import parameters, parse
    from pipelines.user import UserCodeError

    try:
        if name.endswith(".keras"):
            model = keras.saving.load_model(name)
        else:
            module, function = parse(name)
            names, _ = parameters(name, "backbone")
            offered = {"input_shape": tuple(input_shape), "classes": classes}
            model = getattr(importlib.import_module(module), function)(**{k: offered[k] for k in names if k in offered})
    except Exception as e:
        raise UserCodeError(name, e) from e
    if not isinstance(model, keras.Model):
        raise UserCodeError(name, f"gave a {type(model).__name__}, not a keras.Model")
    model.weights_source = "the user's"
    return model


def null_like(batch):
    """The pipeline's ceiling for a user pipeline: a model of the batch's input and output shapes
    that costs next to nothing (each input averaged, one dense layer), so that fit runs as fast
    as batches arrive. Trained on the mean squared error, which any target shape takes."""
    import math

    import keras

    x, y = batch[0], batch[1]
    inputs = keras.tree.map_structure(lambda t: keras.Input(t.shape[1:], dtype=str(t.dtype)), x)
    pooled = [keras.layers.Flatten()(keras.ops.cast(t, "float32")) for t in keras.tree.flatten(inputs)]
    pooled = [keras.ops.mean(t, axis=-1, keepdims=True) for t in pooled]
    joined = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate()(pooled)
    out_shape = tuple(y.shape[1:])
    out = keras.layers.Dense(max(1, math.prod(out_shape)), dtype="float32", name="head")(joined)
    if len(out_shape) > 1:
        out = keras.layers.Reshape(out_shape)(out)
    model = keras.Model(inputs, out, name="null")
    model.weights_source = "random"
    model.compile(optimizer="sgd", loss="mse")
    return model


def tensors_like(model, batch: int, input_size: int):
    """(x, y) in memory shaped like what `model` takes and gives: the model-alone ceiling of a
    user model. Integer inputs (token ids) are 0 or 1, so any embedding takes them; targets are
    class numbers when the model's loss is a sparse one, else one-hot rows."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)

    def like(t):
        shape = (batch,) + tuple(input_size if d is None else d for d in t.shape[1:])
        if "int" in str(t.dtype):
            return rng.integers(0, 2, shape).astype(str(t.dtype))
        return rng.random(shape).astype(str(t.dtype))

    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    x = keras.tree.map_structure(like, inputs)
    out = model.outputs[0]
    loss = str(getattr(model, "loss", "") or "")
    classes = int(out.shape[-1])
    labels = rng.integers(0, classes, (batch,) + tuple(out.shape[1:-1]))
    y = labels.astype("int32") if "sparse" in loss.lower() else np.eye(classes, dtype="float32")[labels]
    return x, y
