"""FLOPs per image, counted from a built model's layers (not looked up).

A multiply-add is 2 FLOPs. Convolutions, depthwise convolutions, dense layers and bilinear
pooling are counted; element-wise layers (BN, activations, pooling, adds) are left out: they
are under 1% of these backbones' work. Training FLOPs follow what backpropagation computes
(see `train_flops`): a frozen layer needs no weight gradient, and no layer before the first
trainable one needs its input's gradient either.
"""

from __future__ import annotations

import math


def _layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a nested model
            yield from _layers(layer)
        else:
            yield layer


def layer_flops(layer) -> int:
    """One image's forward FLOPs through `layer` (0 for the layers left uncounted)."""
    from keras import layers as L

    out = layer.output.shape
    if isinstance(layer, L.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return 2 * kh * kw * math.prod(out[1:])
    if isinstance(layer, L.Conv2D):
        kh, kw = layer.kernel_size
        channels = 1 if layer.data_format == "channels_first" else -1
        cin = layer.input.shape[channels] // layer.groups
        return 2 * kh * kw * cin * math.prod(out[1:])
    if isinstance(layer, L.Dense):
        return 2 * layer.input.shape[-1] * math.prod(out[1:])
    if type(layer).__name__ == "BilinearPooling":
        _, h, w, c = layer.input.shape
        return 2 * h * w * c * c
    return 0


def forward_flops(model) -> int:
    """One image's forward FLOPs through the whole model, nested models included."""
    return sum(layer_flops(layer) for layer in _layers(model))


def train_flops(model) -> int:
    """One image's training FLOPs: the forward pass through every layer; the gradient of each
    layer's input (about one forward pass) for every layer after the first trainable one, since
    only they pass a gradient on to a layer that learns; the gradient of the weights (about one
    forward pass) for every trainable layer. With every layer trainable this is the usual
    3 x forward less the first layer's input gradient; with the head alone it is the forward
    pass plus the head's weight gradient. Layers are taken in the model's order (topological),
    so in a branched block a layer listed after the first trainable one is counted as if it were
    downstream of it."""
    total, seen_trainable = 0, False
    for layer in _layers(model):
        flops = layer_flops(layer)
        trainable = bool(layer.trainable_weights)
        total += flops + (flops if seen_trainable else 0) + (flops if trainable else 0)
        seen_trainable = seen_trainable or trainable
    return total
