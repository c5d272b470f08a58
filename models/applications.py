"""keras.applications backbones with a new head. ImageNet weights are used only when the
file is already in the local Keras cache: nothing is ever downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import keras

from models import freeze_before, new_head

# name -> (constructor, first layer of the last convolution block)
_APPS = {
    "vgg16": (keras.applications.VGG16, "block5_"),
    "resnet50": (keras.applications.ResNet50, "conv5_"),
    "mobilenetv2": (keras.applications.MobileNetV2, "block_16_"),
    "efficientnetb0": (keras.applications.EfficientNetB0, "block7"),
}


def _weights_file(name: str, size: int) -> str:
    """The notop weights file name keras.applications would download."""
    if name == "mobilenetv2":
        rows = size if size in (96, 128, 160, 192, 224) else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
    if name == "efficientnetb0":
        return "efficientnetb0_notop.h5"
    return f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def cached_weights(name: str, size: int) -> str | None:
    """Path of the ImageNet weights in the Keras cache, or None when they are not there."""
    homes = [Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")), Path("/tmp/.keras")]
    for home in homes:
        path = home / "models" / _weights_file(name, size)
        if path.is_file():
            return str(path)
    return None


def build(name: str, input_shape, classes: int, finetune: str):
    """A keras.applications backbone with a new head, ImageNet weights only where cached, frozen as `finetune` says."""
    constructor, last_block = _APPS[name]
    weights = cached_weights(name, input_shape[0])
    base = constructor(include_top=False, weights=weights, input_shape=input_shape)
    model = new_head(base.input, base.output, classes, name, "imagenet" if weights else "random")
    freeze_before(model, {"head": "head_pool", "last_block": last_block, "full": None}[finetune])
    return model
