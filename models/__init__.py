"""Backbone registry: name -> one descriptor (the module that builds it, the inputs it accepts);
build(name, input_shape, classes, finetune) -> compiled-ready keras.Model.

Names are known without importing Keras, so a sweep is checked before any heavy import. A user's
own model (a .keras file, or package.module:function) is models/user.py's.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from models.user import is_user_model


@dataclass(frozen=True)
class Backbone:
    """One backbone, stated once: the module that builds it (its build(name, input_shape, classes,
    finetune), imported only then) and the inputs it accepts."""

    module: str
    min_size: int = 32  # the smallest input side it takes
    size_multiple: int = 1  # the multiple the input side must be of
    # built channels last whatever Keras's image data format (its blocks read x.shape[-1])
    channels_last_only: bool = False
    costs_nothing: bool = False  # does no work on its batches: the pipeline-alone ceiling's model


BACKBONES: dict[str, Backbone] = {
    "vgg16": Backbone("models.applications"),
    "resnet50": Backbone("models.applications"),
    "mobilenetv2": Backbone("models.applications"),
    "efficientnetb0": Backbone("models.applications"),
    "resnext50": Backbone("models.resnets", channels_last_only=True),
    "seresnet50": Backbone("models.resnets", channels_last_only=True),
    # its low-frequency maps, at half resolution, must halve evenly
    "octresnet50": Backbone("models.resnets", size_multiple=32, channels_last_only=True),
    "bcnn": Backbone("models.bcnn", channels_last_only=True),
    "tiny": Backbone("models.tiny", min_size=8),
    "null": Backbone("models.tiny", min_size=1, costs_nothing=True),
}
PIPELINE_ALONE = next(name for name, b in BACKBONES.items() if b.costs_nothing)  # every pipeline-alone ceiling's model


def is_pipeline_alone(name) -> bool:
    """Whether `name` is the model that costs nothing, so a run of it measures the pipeline alone (its
    ceiling); every stage asks this rather than matching a name."""
    backbone = BACKBONES.get(name) if isinstance(name, str) else None
    return bool(backbone and backbone.costs_nothing)


def input_size_problem(name: str, size: int) -> str | None:
    """Why `name` cannot be built at size x size, or None when it can (a user's model decides)."""
    if is_user_model(name):
        return None
    low, multiple = BACKBONES[name].min_size, BACKBONES[name].size_multiple
    if size < low or size % multiple:
        rule = f"at least {low}" + (f" and a multiple of {multiple}" if multiple > 1 else "")
        return f"{name} takes input sizes {rule}, not {size}"
    return None


def data_format_problem(name: str, data_format: str) -> str | None:
    """Why `name` cannot be built in `data_format`, or None when it can."""
    if data_format == "channels_first" and name in BACKBONES and BACKBONES[name].channels_last_only:
        free = ", ".join(n for n, b in BACKBONES.items() if not b.channels_last_only)
        return f"{name} is built channels_last only; data_format=channels_first takes {free}"
    return None


def build(
    name: str, input_shape: tuple[int, int, int], classes: int, finetune: str = "full", transfer: str = "float32"
):
    """A model with a new `classes`-way softmax head. finetune is the seed's three steps:
    'head' trains the head only, 'last_block' also the last convolution block, 'full' all.

    The model takes images channels last (height, width, channels), as every pipeline gives
    them: float32 in [0, 1], or with `transfer="uint8"` the decoded pixels, which its first layer
    divides by 255 on the device (the same float32 division the pipelines make, so the same
    tensor). When Keras's image data format is channels_first, the backbone is built in it and a
    transpose in front of it turns the images round on the device."""
    import keras

    from models.layers import UnitRange

    if is_user_model(name):
        from models import user

        return user.build(name, input_shape, classes)
    module = importlib.import_module(BACKBONES[name].module)
    channels_first = keras.config.image_data_format() == "channels_first"
    if not channels_first and transfer == "float32":
        return module.build(name, tuple(input_shape), classes, finetune)
    height, width, channels = input_shape
    inner = module.build(name, (channels, height, width) if channels_first else tuple(input_shape), classes, finetune)
    images = keras.Input(tuple(input_shape), dtype=transfer, name="images")
    x = UnitRange(name="to_unit_range")(images) if transfer == "uint8" else images
    if channels_first:
        x = keras.layers.Permute((3, 1, 2), name="to_channels_first")(x)
    model = keras.Model(images, inner(x), name=name)
    model.weights_source = inner.weights_source
    return model


def new_head(inputs, features, classes: int, name: str, weights: str = "random"):
    """The model with pooled features and a new `classes`-way softmax head."""
    import keras

    pooled = keras.layers.GlobalAveragePooling2D(name="head_pool")(features)
    # float32 softmax under mixed precision too, as the Keras mixed-precision guide advises
    outputs = keras.layers.Dense(classes, activation="softmax", dtype="float32", name="head")(pooled)
    model = keras.Model(inputs, outputs, name=name)
    model.weights_source = weights
    return model


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
