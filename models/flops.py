"""FLOPs per image, counted from a built model's layers (not looked up).

A multiply-add is 2 FLOPs. Counted: convolutions of any rank (grouped, depthwise, separable,
transposed), dense layers on any rank, attention (its projections, scores and weighted sum),
recurrent layers (per time step), normalisation (about 4 per element), pooling (the window per
output), bilinear pooling. Embedding lookups, reshapes, dropout, padding and element-wise layers
(activations, adds) are counted as 0, known. Any other layer is not counted: it is named (`uncounted`),
never taken as 0 silently. Unknown dimensions (keras.Input((None, None, 3))) are taken from the
run's input shape: the model is traced again on it. Training FLOPs follow what backpropagation
computes (see `train_flops`).
"""

from __future__ import annotations

import math

ZERO = (
    "InputLayer",
    "Embedding",
    "Flatten",
    "Reshape",
    "Permute",
    "RepeatVector",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Softmax",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
    "Rescaling",
    "Identity",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
    "CenterCrop",
    "Resizing",
    "Normalization",
)
POOLS = ("MaxPooling", "AveragePooling")
GLOBAL = ("GlobalAveragePooling", "GlobalMaxPooling")
NORMS = ("BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization", "RMSNormalization")
GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}


def _layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and not hasattr(layer, "cell"):  # a nested model, not an RNN
            yield from _layers(layer)
        else:
            yield layer


def _channels(layer, shape) -> int:
    return shape[1] if getattr(layer, "data_format", "channels_last") == "channels_first" else shape[-1]


def layer_flops(layer) -> int | None:
    """One image's forward FLOPs through `layer`; None where this layer type is not counted."""
    from keras import layers as L

    name = type(layer).__name__
    if name in ZERO:
        return 0
    if isinstance(layer, L.MultiHeadAttention):
        return _attention(layer)
    if isinstance(layer.input, (list, tuple, dict)):
        return None
    inp, out = layer.input.shape, layer.output.shape
    per_out = math.prod(out[1:])
    if any(name.startswith(p) for p in GLOBAL):
        return math.prod(inp[1:])
    if any(name.startswith(p) for p in POOLS):
        return math.prod(layer.pool_size) * per_out
    if name in NORMS:
        return 4 * math.prod(inp[1:])
    if name.startswith("SeparableConv"):  # depthwise, then pointwise, at each output position
        mid, positions = _channels(layer, inp) * layer.depth_multiplier, per_out // layer.filters
        return 2 * positions * mid * (math.prod(layer.kernel_size) + layer.filters)
    if name.startswith("DepthwiseConv"):
        return 2 * math.prod(layer.kernel_size) * per_out
    if "Transpose" in name:  # every input value spreads its kernel over the output's filters
        return 2 * math.prod(layer.kernel_size) * layer.filters * math.prod(inp[1:])
    if isinstance(layer, L.Conv1D | L.Conv2D | L.Conv3D):
        cin = _channels(layer, inp) // layer.groups
        return 2 * math.prod(layer.kernel_size) * cin * per_out
    if isinstance(layer, L.Dense):  # on any rank: each output value from the last axis
        return 2 * inp[-1] * per_out
    if name in GATES or name == "Bidirectional":
        return _recurrent(layer)
    if name == "BilinearPooling":
        _, h, w, c = inp
        return 2 * h * w * c * c
    return None


def _attention(layer) -> int:
    """Query, key, value and output projections, the scores and the weighted sum, per example."""
    shapes = [t.shape for t in (layer.input if isinstance(layer.input, (list, tuple)) else [layer.input])]
    query, value = shapes[0], shapes[1] if len(shapes) > 1 else shapes[0]
    key = shapes[2] if len(shapes) > 2 else value
    q_len, v_len = math.prod(query[1:-1]), math.prod(value[1:-1])
    heads, dk, dv = layer.num_heads, layer.key_dim, layer.value_dim or layer.key_dim
    out_dim = math.prod(layer.output.shape[len(query) - 1 :]) if layer.output.shape else query[-1]
    projections = q_len * query[-1] * heads * dk + v_len * key[-1] * heads * dk + v_len * value[-1] * heads * dv
    projections += q_len * heads * dv * out_dim
    return 2 * (projections + q_len * v_len * heads * dk + q_len * v_len * heads * dv)


def _recurrent(layer) -> int:
    """Each step's gates: input and recurrent kernels, per time step (both directions for Bidirectional)."""
    if type(layer).__name__ == "Bidirectional":
        return _recurrent(layer.forward_layer) + _recurrent(layer.backward_layer)
    steps, features = layer.input.shape[1], layer.input.shape[-1]
    units = layer.units
    return 2 * GATES[type(layer).__name__] * (features + units) * units * steps


def concrete(model, input_shape):
    """`model` itself where every dimension past the batch is known, else the model traced again on
    inputs of `input_shape` (the run's first batch's shapes, batch axis left out; one per input)."""
    import keras

    if all(None not in t.shape[1:] for t in model.inputs):
        return model
    shapes = input_shape if isinstance(input_shape, list) else [input_shape]
    inputs = [keras.Input(tuple(s), dtype=t.dtype) for s, t in zip(shapes, model.inputs)]
    return keras.models.clone_model(model, input_tensors=inputs[0] if len(inputs) == 1 else inputs)


def counted(model) -> tuple[list[tuple[object, int]], list[str]]:
    """([(layer, forward FLOPs)] of the layers counted, the names of the layer types not counted)."""
    found, missed = [], []
    for layer in _layers(model):
        flops = layer_flops(layer)
        if flops is None:
            missed.append(type(layer).__name__)
        else:
            found.append((layer, int(flops)))
    return found, sorted(set(missed))


def forward_flops(model) -> int:
    """One image's forward FLOPs through the layers counted, nested models included."""
    return sum(flops for _, flops in counted(model)[0])


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
    for layer, flops in counted(model)[0]:
        trainable = bool(layer.trainable_weights)
        total += flops + (flops if seen_trainable else 0) + (flops if trainable else 0)
        seen_trainable = seen_trainable or trainable
    return total
