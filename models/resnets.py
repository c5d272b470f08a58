"""The ResNet-50 family the seed names and keras.applications lacks: ResNeXt-50 (32x4d),
SE-ResNet-50 and an octave-convolution ResNet-50 (alpha 0.25).

All share ResNet-50's skeleton (stem, four stages of 3, 4, 6, 3 bottlenecks, stride in the
3x3 convolution as in torchvision); only the bottleneck differs.
"""

from __future__ import annotations

from keras import layers

from models import freeze_before, new_head

STAGES = ((3, 64, 256, 1), (4, 128, 512, 2), (6, 256, 1024, 2), (3, 512, 2048, 2))  # blocks, planes, out, stride
OCT_ALPHA = 0.25


def _conv_bn(x, filters, kernel, stride, name, relu=True, groups=1):
    x = layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, groups=groups, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(epsilon=1e-5, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _stem(inputs):
    x = _conv_bn(inputs, 64, 7, 2, "stem")
    return layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)


def _squeeze_excite(x, name, reduction=16):
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
    s = layers.Dense(channels // reduction, activation="relu", name=f"{name}_se_reduce")(s)
    s = layers.Dense(channels, activation="sigmoid", name=f"{name}_se_expand")(s)
    return layers.Multiply(name=f"{name}_se_scale")([x, s])


def _bottleneck(x, planes, out, stride, name, groups=1, width=None, squeeze_excite=False):
    width = width or planes
    shortcut = x
    if stride != 1 or x.shape[-1] != out:
        shortcut = _conv_bn(x, out, 1, stride, f"{name}_proj", relu=False)
    y = _conv_bn(x, width, 1, 1, f"{name}_1")
    y = _conv_bn(y, width, 3, stride, f"{name}_2", groups=groups)
    y = _conv_bn(y, out, 1, 1, f"{name}_3", relu=False)
    if squeeze_excite:
        y = _squeeze_excite(y, name)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def _resnet(inputs, **block):
    x = _stem(inputs)
    for s, (blocks, planes, out, stride) in enumerate(STAGES, start=2):
        for b in range(blocks):
            width = planes * 2 if block.get("groups", 1) == 32 else None  # 32 groups x 4 channels at stage 2
            x = _bottleneck(x, planes, out, stride if b == 0 else 1, f"conv{s}_block{b + 1}", width=width, **block)
    return x


# -- octave convolution: a high-frequency map at full and a low-frequency one at half resolution


def _oct_conv_bn(x, filters, kernel, stride, alpha_out, name, relu=True):
    """x is (high, low), low None when alpha_in is 0. The four paths H->H, L->H, H->L, L->L
    split the weights of one convolution, so the parameter count is that of a plain one."""
    high, low = x
    low_filters = int(alpha_out * filters)
    high_filters = filters - low_filters

    def conv(t, f, path):
        return layers.Conv2D(f, kernel, padding="same", use_bias=False, name=f"{name}_{path}")(t)

    def pool(t, path):
        return layers.AveragePooling2D(2, name=f"{name}_{path}_pool")(t)

    if stride == 2:  # the low map is then already at the new high resolution
        high = pool(high, "hs")
    out_high = conv(high, high_filters, "hh")
    if low is not None:
        from_low = conv(low, high_filters, "lh")
        if stride == 1:
            from_low = layers.UpSampling2D(2, name=f"{name}_lh_up")(from_low)
        out_high = layers.Add(name=f"{name}_h_add")([out_high, from_low])
    out_low = None
    if low_filters:
        out_low = conv(pool(high, "hl"), low_filters, "hl")
        if low is not None:
            low_in = pool(low, "ls") if stride == 2 else low
            out_low = layers.Add(name=f"{name}_l_add")([out_low, conv(low_in, low_filters, "ll")])

    def finish(t, branch):
        if t is None:
            return None
        t = layers.BatchNormalization(epsilon=1e-5, name=f"{name}_{branch}_bn")(t)
        return layers.ReLU(name=f"{name}_{branch}_relu")(t) if relu else t

    return finish(out_high, "h"), finish(out_low, "l")


def _oct_bottleneck(x, planes, out, stride, name, alpha_out):
    shortcut = x
    if stride != 1 or x[0].shape[-1] + (x[1].shape[-1] if x[1] is not None else 0) != out:
        shortcut = _oct_conv_bn(x, out, 1, stride, alpha_out, f"{name}_proj", relu=False)
    y = _oct_conv_bn(x, planes, 1, 1, alpha_out, f"{name}_1")
    y = _oct_conv_bn(y, planes, 3, stride, alpha_out, f"{name}_2")
    y = _oct_conv_bn(y, out, 1, 1, alpha_out, f"{name}_3", relu=False)
    merged = []
    for branch, (a, b) in zip("hl", zip(y, shortcut)):
        merged.append(
            None
            if a is None
            else layers.ReLU(name=f"{name}_{branch}_out")(layers.Add(name=f"{name}_{branch}_add")([a, b]))
        )
    return tuple(merged)


def _oct_resnet(inputs):
    """Octave convolutions in the first three stages; the last stage turns back to one
    resolution (alpha 0), as the OctConv paper does for ResNet-50."""
    x = (_stem(inputs), None)
    for s, (blocks, planes, out, stride) in enumerate(STAGES, start=2):
        alpha = OCT_ALPHA if s < 5 else 0.0
        for b in range(blocks):
            x = _oct_bottleneck(x, planes, out, stride if b == 0 else 1, f"conv{s}_block{b + 1}", alpha)
    return x[0]


def build(name: str, input_shape, classes: int, finetune: str):
    """ResNeXt-50, SE-ResNet-50 or OctResNet-50 from random weights with a new head, frozen as `finetune` says."""
    inputs = layers.Input(input_shape)
    if name == "resnext50":
        features = _resnet(inputs, groups=32)
    elif name == "seresnet50":
        features = _resnet(inputs, squeeze_excite=True)
    else:
        features = _oct_resnet(inputs)
    model = new_head(inputs, features, classes, name)
    freeze_before(model, {"head": "head_pool", "last_block": "conv5_", "full": None}[finetune])
    return model
