"""The options every builder shares: normalization, weight decay, dropout, rescale, dtypes."""

import keras
import numpy as np
import pytest

import kerasdl
from kerasdl.models import get_model, group_count, resnet

NORMALIZATIONS = ["batch", "layer", "instance", "group", None]
NORM_CLASSES = {
    "batch": kerasdl.layers.BatchNormalization,
    "layer": kerasdl.layers.LayerNormalization,
    "instance": kerasdl.layers.InstanceNormalization,
    "group": kerasdl.layers.GroupNormalization,
}


def tiny_resnet(**kwargs):
    """The resnet family at toy width: the same code paths as resnet18, 1% of the cost."""
    return resnet(
        (8, 8, 1), 10, stage_sizes=(1, 1), widths=(8, 16), rescale=1 / 16, **kwargs
    )


def digits_batch(batch_size=8):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 16, (batch_size, 8, 8, 1)).astype("float32")
    return images, np.arange(batch_size) % 10


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("family", ["lenet", "resnet"])
def test_each_normalization_trains_one_batch(family, normalization):
    if family == "lenet":
        model = get_model(
            "lenet", (8, 8, 1), 10, rescale=1 / 16, normalization=normalization
        )
    else:
        model = tiny_resnet(normalization=normalization)
    norm_layers = [
        layer
        for layer in model.layers
        if isinstance(layer, tuple(NORM_CLASSES.values()))
    ]
    if normalization is None:
        assert not norm_layers
    else:
        conv_norms = [l for l in norm_layers if len(l.input.shape) == 4]
        assert conv_norms and all(
            isinstance(layer, NORM_CLASSES[normalization]) for layer in conv_norms
        )
    # Eager: the layers' math, without minutes of graph tracing across the matrix.
    model.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True)
    images, labels = digits_batch()
    before = [np.array(w) for w in model.trainable_weights]
    loss = model.train_on_batch(images, labels)
    assert np.isfinite(loss)
    assert any(
        not np.allclose(b, np.array(w)) for b, w in zip(before, model.trainable_weights)
    )


def test_layer_normalization_covers_height_width_channels():
    model = tiny_resnet(normalization="layer")
    assert tuple(model.get_layer("stem_norm").axis) == (1, 2, 3)


@pytest.mark.parametrize(
    "channels, groups", [(64, 32), (512, 32), (16, 8), (6, 3), (96, 32), (3, 1), (1, 1)]
)
def test_group_count(channels, groups):
    assert group_count(channels) == groups


def test_weight_decay_adds_one_loss_per_kernel():
    plain = get_model("lenet", (28, 28, 1), 10)
    assert not plain.losses
    model = get_model("lenet", (28, 28, 1), 10, weight_decay=1e-4)
    kernels = [layer for layer in model.layers if hasattr(layer, "kernel")]
    assert len(kernels) == 5  # conv1, conv2, fc1, fc2, logits
    assert len(model.losses) == len(kernels)
    for layer in kernels:
        assert isinstance(layer.kernel_regularizer, kerasdl.regularizers.L2)
    expected = sum(
        1e-4 * np.sum(np.square(np.array(layer.kernel))) for layer in kernels
    )
    np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-5)


def test_dropout_uses_kerasdl_layer():
    model = get_model("lenet", (28, 28, 1), 10, dropout=0.3)
    dropouts = [l for l in model.layers if isinstance(l, kerasdl.layers.Dropout)]
    assert [l.name for l in dropouts] == ["fc1_dropout", "fc2_dropout"]
    assert get_model("resnet18", (8, 8, 1), 10, dropout=0.2).get_layer("head_dropout")


def test_uint8_input_with_rescale_matches_float_input():
    raw = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1)).astype("uint8")
    model = get_model("lenet", (28, 28, 1), 10, rescale=1 / 255, input_dtype="uint8")
    assert model.inputs[0].dtype == "uint8"
    assert model.layers[1].name == "rescale"
    reference = get_model("lenet", (28, 28, 1), 10)
    reference.set_weights(model.get_weights())
    np.testing.assert_allclose(
        np.asarray(model(raw)),
        np.asarray(reference(raw.astype("float32") / 255)),
        atol=1e-6,
    )


def test_small_inputs_are_resized_to_the_family_minimum():
    assert get_model("lenet", (8, 8, 1), 10).get_layer("resize").output.shape == (
        None,
        28,
        28,
        1,
    )
    # ResNet's CIFAR stem needs no upsampling: 8x8 digits stay 8x8.
    resnet18 = get_model("resnet18", (8, 8, 1), 10)
    assert "resize" not in [layer.name for layer in resnet18.layers]
    assert resnet18.get_layer("stage4_block2_out").output.shape == (None, 1, 1, 512)
    # 32x32 CIFAR: small stem; 224x224: ImageNet stem.
    assert get_model("resnet18", (32, 32, 3), 10).get_layer(
        "stem_conv"
    ).kernel_size == (3, 3)
    assert get_model("lenet", (32, 32, 3), 10).get_layer("flatten").output.shape == (
        None,
        576,
    )


def test_mixed_precision_outputs_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny_resnet(normalization="batch")
        images, _ = digits_batch(2)
        output = model(images)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.backend.standardize_dtype(output.dtype) == "float32"
    np.testing.assert_allclose(np.asarray(output).sum(axis=1), 1.0, atol=1e-3)


def test_keras_layer_library_builds_the_same_graph():
    ours = tiny_resnet(normalization="group", dropout=0.1, weight_decay=1e-4)
    theirs = tiny_resnet(
        normalization="group", dropout=0.1, weight_decay=1e-4, layer_library="keras"
    )
    assert [l.name for l in ours.layers] == [l.name for l in theirs.layers]
    assert ours.count_params() == theirs.count_params()
    assert isinstance(theirs.get_layer("stem_norm"), keras.layers.GroupNormalization)
    theirs.set_weights(ours.get_weights())
    images, _ = digits_batch(2)
    np.testing.assert_allclose(
        np.asarray(ours(images)), np.asarray(theirs(images)), atol=1e-5
    )
