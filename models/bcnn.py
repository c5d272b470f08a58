"""Bilinear CNN (Lin et al. 2015, B-CNN [D,D]): the outer product of vgg16's last convolution
features with themselves, averaged over positions, signed square root, L2 normalisation, then
a linear classifier. The seed's predict example loads a bcnn model."""

from __future__ import annotations

import keras
from keras import layers, ops

from models import freeze_before
from models.applications import cached_weights


@keras.saving.register_keras_serializable(package="gpubench")
class BilinearPooling(layers.Layer):
    """(batch, h, w, c) -> (batch, c * c), normalised as the B-CNN paper does."""

    def call(self, x):
        positions = ops.cast(ops.shape(x)[1] * ops.shape(x)[2], x.dtype)
        outer = ops.einsum("bhwc,bhwd->bcd", x, x) / positions
        flat = ops.reshape(outer, (-1, x.shape[-1] * x.shape[-1]))
        signed_root = ops.sign(flat) * ops.sqrt(ops.abs(flat) + 1e-12)
        return signed_root / ops.maximum(ops.norm(signed_root, axis=-1, keepdims=True), 1e-12)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1] * input_shape[-1])


def build(name: str, input_shape, classes: int, finetune: str):
    """B-CNN on vgg16's block5_conv3 features, ImageNet weights only where cached, frozen as `finetune` says."""
    weights = cached_weights("vgg16", input_shape[0])
    vgg = keras.applications.VGG16(include_top=False, weights=weights, input_shape=input_shape)
    features = vgg.get_layer("block5_conv3").output  # before the last pooling, as in the paper
    pooled = BilinearPooling(name="head_bilinear")(features)
    outputs = layers.Dense(classes, activation="softmax", dtype="float32", name="head")(pooled)
    model = keras.Model(vgg.input, outputs, name=name)
    model.weights_source = "imagenet" if weights else "random"
    freeze_before(model, {"head": "head_bilinear", "last_block": "block5_", "full": None}[finetune])
    return model
