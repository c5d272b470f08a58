"""Every backbone builds, trains a step, and has the published number of parameters."""

import numpy as np
import pytest

import models
from models import flops


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# Trainable parameters with a 1000-class head, as the papers and torchvision count them
# (BatchNormalization's moving statistics are not parameters).
PUBLISHED = {
    "resnext50": 25_028_904,  # ResNeXt-50 (32x4d), torchvision resnext50_32x4d
    "seresnet50": 28_088_024,  # SE-ResNet-50, Hu et al. 2018: 28.1M
    "octresnet50": 25_557_032,  # Oct-ResNet-50 (alpha 0.25), Chen et al. 2019: 25.6M, as ResNet-50
    "vgg16": 14_714_688 + 513_000,  # vgg16's convolutions (138.36M less the 123.64M of its FC head)
}


@pytest.fixture(scope="module")
def built():
    """`built(name, size, classes)`: one build of a backbone for the module's tests that can share it
    (building a 50-layer backbone is seconds of CPU, and its parameter count does not depend on the
    input size), let go when the module's tests are done."""
    found = {}

    def build(name: str, size: int, classes: int):
        if (name, size, classes) not in found:
            found[(name, size, classes)] = models.build(name, (size, size, 3), classes)
        return found[(name, size, classes)]

    yield build
    found.clear()


def classes_of(name: str) -> int:
    """The published backbones trained at the 1000-class head their figures count (so that one
    build serves both tests), the others at 3 classes."""
    return 1000 if name in PUBLISHED else 3


@pytest.mark.slow
@pytest.mark.xdist_group("backbones")
@pytest.mark.parametrize("name, count", PUBLISHED.items())
def test_parameter_counts_match_the_published_figures(name, count, built):
    assert trainable(built(name, 32, 1000)) == pytest.approx(count, rel=0.03)


@pytest.mark.slow
def test_bcnn_is_vgg16_features_and_a_bilinear_classifier():
    from models.bcnn import BilinearPooling

    model = models.build("bcnn", (64, 64, 3), 5)
    assert trainable(model) == 14_714_688 + 512 * 512 * 5 + 5
    x = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    pooled = BilinearPooling()(np.abs(x))
    assert pooled.shape == (2, 9) and np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.xdist_group("backbones")
@pytest.mark.parametrize(
    "name, size",
    [("resnext50", 32), ("seresnet50", 32), ("octresnet50", 32), ("bcnn", 32), ("mobilenetv2", 32), ("tiny", 16)],
)
def test_each_backbone_trains_a_step(name, size, built):
    """One step through every layer and its gradients, run eagerly: tracing octresnet50's step into a
    graph took 13 s of this test's 15 on the 2-core machine, and a backbone's compile is what every
    sweep of it does first (a failure there is its row's error)."""
    classes = classes_of(name)
    model = built(name, size, classes)
    model.compile(optimizer="sgd", loss="categorical_crossentropy", run_eagerly=True)
    x = np.random.default_rng(0).random((2, size, size, 3), dtype=np.float32)
    y = np.eye(classes, dtype=np.float32)[[0, 2]]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert tuple(model(x, training=False).shape) == (2, classes)  # inference, eagerly: no second compile


def test_a_backbone_is_one_descriptor_every_check_reads():
    """One dict of descriptors: a backbone without its module cannot be declared, and every name
    is answered by each check (no KeyError) and has a build in its module (read, not imported)."""
    import ast
    from pathlib import Path

    with pytest.raises(TypeError):
        models.Backbone()
    root = Path(models.__file__).parent.parent
    for name, backbone in models.BACKBONES.items():
        assert models.input_size_problem(name, 224) is None
        assert models.data_format_problem(name, "channels_last") is None
        assert (models.data_format_problem(name, "channels_first") is None) != backbone.channels_last_only
        tree = ast.parse((root / (backbone.module.replace(".", "/") + ".py")).read_text())
        assert "build" in {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}, name


def test_input_sizes_the_architecture_cannot_take_are_named():
    assert models.input_size_problem("octresnet50", 100) == (
        "octresnet50 takes input sizes at least 32 and a multiple of 32, not 100"
    )
    assert models.input_size_problem("vgg16", 16) == "vgg16 takes input sizes at least 32, not 16"
    assert models.input_size_problem("vgg16", 33) is None


@pytest.mark.slow
@pytest.mark.parametrize("finetune, trainable_layers", [("head", {"head"}), ("full", None)])
def test_finetune_steps_freeze_what_they_say(finetune, trainable_layers):
    model = models.build("tiny", (16, 16, 3), 2, finetune)
    names = {layer.name for layer in model.layers if layer.trainable and layer.weights}
    assert names == (trainable_layers or {layer.name for layer in model.layers if layer.weights})


@pytest.mark.slow
def test_last_block_trains_the_last_convolution_block_and_head():
    model = models.build("vgg16", (32, 32, 3), 2, "last_block")
    names = {layer.name for layer in model.layers if layer.trainable and layer.weights}
    assert names == {"block5_conv1", "block5_conv2", "block5_conv3", "head"}


@pytest.mark.slow
def test_frozen_batch_norm_stays_in_inference_mode():
    """The seed's third pitfall: a frozen BN layer must not use or update batch statistics."""
    model = models.build("tiny", (16, 16, 3), 2, "head")
    bn = model.get_layer("block1_bn")
    before = [w.numpy().copy() for w in bn.weights]
    x = np.random.default_rng(1).random((4, 16, 16, 3), dtype=np.float32) * 5
    assert np.allclose(model(x, training=True), model(x, training=False), atol=1e-6)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model.train_on_batch(x, np.eye(2, dtype=np.float32)[[0, 1, 0, 1]])
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, bn.weights))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, size, macs",
    [
        ("vgg16", 224, 15.5e9),  # 15.5 G multiply-adds with the FC head; our head is 0.1% of that
        ("resnet50", 224, 3.9e9),  # 3.8 to 4.1 G in the literature (torchvision: 4.09 G)
        ("mobilenetv2", 224, 0.30e9),  # 300 M multiply-adds (Sandler et al.)
    ],
)
def test_flops_are_counted_from_the_model(name, size, macs):
    from models.flops import forward_flops, train_flops

    model = models.build(name, (size, size, 3), 1000)
    assert forward_flops(model) / 2 == pytest.approx(macs, rel=0.06)
    first_conv = next(layer for layer in flops._layers(model) if flops.layer_flops(layer))
    # weightless layers (pooling, norms) pass a gradient but learn none
    assert train_flops(model) == pytest.approx(3 * forward_flops(model) - flops.layer_flops(first_conv), rel=0.02)


# tiny at 16 px, 2 classes, counted by hand: block1_conv 3x3x3 -> 7x7x8, 2*9*3*7*7*8 = 21,168;
# block1_bn 4 a value, 4*7*7*8 = 1,568; block2_conv 3x3x8 -> 3x3x16, 2*9*8*3*3*16 = 20,736; the global
# pool's sums 3*3*16 = 144; head 16 -> 2, 2*16*2 = 64; forward 43,680.
@pytest.mark.parametrize(
    "finetune, expected",
    [
        # forward, every weight gradient, input gradients after block1_conv
        ("full", 43680 + (43680 - 144) + (43680 - 21168)),
        # forward, block2's and head's weights, pool's and head's input gradients
        ("last_block", 43680 + 20736 + 64 + 144 + 64),
        ("head", 43680 + 64),  # forward, head's weights: nothing before it needs a gradient
    ],
)
@pytest.mark.slow
def test_training_flops_count_only_the_gradients_backpropagation_computes(finetune, expected):
    model = models.build("tiny", (16, 16, 3), 2, finetune)
    assert flops.forward_flops(model) == 43680
    assert flops.train_flops(model) == expected


@pytest.mark.slow
def test_grouped_and_bilinear_layers_are_counted():
    from models.flops import forward_flops

    resnext = forward_flops(models.build("resnext50", (224, 224, 3), 1000)) / 2
    assert resnext == pytest.approx(4.27e9, rel=0.06)  # ResNeXt-50 32x4d: 4.2 G multiply-adds
    bcnn = models.build("bcnn", (64, 64, 3), 3)
    vgg = models.build("vgg16", (64, 64, 3), 3)
    assert forward_flops(bcnn) - forward_flops(vgg) == pytest.approx(
        2 * 4 * 4 * 512 * 512 + 2 * 512 * 512 * 3 - 2 * 512 * 3, rel=0.01
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny", "vgg16"])
def test_a_channels_first_model_takes_the_same_images_and_predicts_the_same_shape(name):
    import keras

    last = models.build(name, (32, 32, 3), 3)
    keras.config.set_image_data_format("channels_first")
    try:
        first = models.build(name, (32, 32, 3), 3)
        convs = [layer for layer in flops._layers(first) if isinstance(layer, keras.layers.Conv2D)]
    finally:
        keras.config.set_image_data_format("channels_last")
    assert first.input_shape == last.input_shape == (None, 32, 32, 3)
    assert first.output_shape == last.output_shape == (None, 3)
    assert convs and all(c.data_format == "channels_first" for c in convs)
    assert flops.forward_flops(first) == flops.forward_flops(last)
    assert first.count_params() == last.count_params()


def test_backbones_built_channels_last_only_refuse_channels_first():
    assert models.data_format_problem("resnext50", "channels_first").startswith("resnext50 is built channels_last only")
    assert models.data_format_problem("resnext50", "channels_last") is None
    assert models.data_format_problem("vgg16", "channels_first") is None


@pytest.mark.slow
def test_an_attention_model_is_counted_layer_by_layer_as_by_hand():
    """Embedding (0, known) -> self-attention of 2 heads of 8 on 32 tokens of 16 -> Conv1D(8, 3) -> Dense(2)
    on every position: 65,536 + 11,520 + 480 multiply-adds, none left uncounted."""
    import keras

    tokens = keras.Input((32,), dtype="int32")
    x = keras.layers.Embedding(1000, 16)(tokens)
    x = keras.layers.MultiHeadAttention(2, 8)(x, x)
    model = keras.Model(tokens, keras.layers.Dense(2)(keras.layers.Conv1D(8, 3)(x)))
    projections, scores, weighted = 4 * 32 * 16 * 16, 32 * 32 * 2 * 8, 32 * 32 * 2 * 8
    assert flops.counted(model)[1] == []
    assert flops.forward_flops(model) == 2 * (projections + scores + weighted + 3 * 16 * 30 * 8 + 8 * 30 * 2)


@pytest.mark.slow
def test_unknown_dimensions_are_taken_from_the_run_s_input_and_an_unknown_layer_is_named():
    import keras

    class Mystery(keras.layers.Layer):
        def call(self, x):
            return x * 2

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.SeparableConv2D(8, 3, padding="same")(x)
    x = keras.layers.Conv2DTranspose(2, 2, strides=2)(x)
    x = keras.layers.GlobalAveragePooling2D()(Mystery()(x))
    model = flops.concrete(keras.Model(inputs, keras.layers.Dense(2)(x)), (8, 8, 3))
    by_hand = 9 * 3 * 4 * 64 + 64 * 4 * (9 + 8) + 4 * 2 * 8 * 8 * 8  # conv, separable, transposed (MACs)
    assert flops.forward_flops(model) == 2 * by_hand + 16 * 16 * 2 + 2 * 2 * 2  # + the global pool's sums, dense
    assert flops.counted(model)[1] == ["Mystery"]
