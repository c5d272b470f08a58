"""Backbone registry: name -> build(input_shape, classes, finetune) -> compiled-ready keras.Model.

Names are known without importing Keras, so a sweep is checked before any heavy import.
"""

from __future__ import annotations

import importlib

# name -> module that builds it; each module has build(name, input_shape, classes, finetune).
BACKBONES = {
    "vgg16": "models.applications",
    "resnet50": "models.applications",
    "mobilenetv2": "models.applications",
    "efficientnetb0": "models.applications",
    "tiny": "models.tiny",
}


def build(name: str, input_shape: tuple[int, int, int], classes: int, finetune: str = "full"):
    """A model with a new `classes`-way softmax head. finetune is the seed's three steps:
    'head' trains the head only, 'last_block' also the last convolution block, 'full' all."""
    return importlib.import_module(BACKBONES[name]).build(name, tuple(input_shape), classes, finetune)


def freeze_before(model, first_trainable: str | None) -> None:
    """Freeze every layer before the first whose name starts with `first_trainable`
    (None: freeze nothing). Frozen BatchNormalization layers then run in inference mode,
    which Keras 3 does for any BN layer with trainable=False: the seed's third pitfall."""
    if first_trainable is None:
        return
    names = [layer.name for layer in model.layers]
    start = next((i for i, n in enumerate(names) if n.startswith(first_trainable)), None)
    if start is None:
        raise ValueError(f"{model.name}: no layer named {first_trainable}*")
    for layer in model.layers[:start]:
        layer.trainable = False
