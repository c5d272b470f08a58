"""FLOPs per image, counted from a built model's layers (not looked up).

A multiply-add is 2 FLOPs. Convolutions, depthwise convolutions, dense layers and bilinear
pooling are counted; element-wise layers (BN, activations, pooling, adds) are left out: they
are under 1% of these backbones' work. Training is counted as 3 x forward (the backward pass
computes gradients for activations and weights, each about a forward pass), the usual
approximation, which overstates a run whose frozen layers skip weight gradients.
"""

from __future__ import annotations

import math


def _layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a nested model
            yield from _layers(layer)
        else:
            yield layer


def forward_flops(model) -> int:
    from keras import layers as L

    total = 0
    for layer in _layers(model):
        out = layer.output.shape
        if isinstance(layer, L.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += 2 * kh * kw * math.prod(out[1:])
        elif isinstance(layer, L.Conv2D):
            kh, kw = layer.kernel_size
            channels = 1 if layer.data_format == "channels_first" else -1
            cin = layer.input.shape[channels] // layer.groups
            total += 2 * kh * kw * cin * math.prod(out[1:])
        elif isinstance(layer, L.Dense):
            total += 2 * layer.input.shape[-1] * math.prod(out[1:])
        elif type(layer).__name__ == "BilinearPooling":
            _, h, w, c = layer.input.shape
            total += 2 * h * w * c * c
    return total


def train_flops(model) -> int:
    return 3 * forward_flops(model)
