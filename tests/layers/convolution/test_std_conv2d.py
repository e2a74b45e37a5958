"""Tests of kerasdl.layers.StdConv2D."""

import keras
import numpy as np
import pytest

from kerasdl.layers import StdConv2D
from kerasdl.testing import run_layer_test


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _np(v):
    return keras.ops.convert_to_numpy(v)


def _standardize(kernel, epsilon):
    """Per output filter, over (kernel_h, kernel_w, in_channels / groups)."""
    kernel = kernel.astype("float64")
    mean = kernel.mean(axis=(0, 1, 2), keepdims=True)
    variance = kernel.var(axis=(0, 1, 2), keepdims=True)
    return (kernel - mean) / np.sqrt(variance + epsilon)


def _conv_with_kernel(conv, kernel, x):
    """A plain Conv2D with `conv`'s config (minus epsilon) and the given kernel."""
    config = conv.get_config()
    del config["epsilon"]
    config["name"] = "reference"
    reference = keras.layers.Conv2D.from_config(config)
    reference.build(x.shape)
    weights = [kernel.astype("float32")] + conv.get_weights()[1:]
    reference.set_weights(weights)
    return _np(reference(x))


def test_layer_contract():
    run_layer_test(
        StdConv2D,
        {"filters": 4, "kernel_size": 3, "epsilon": 1e-5, "padding": "same"},
        input_shape=(2, 6, 6, 3),
        expected_output_shape=(2, 6, 6, 4),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"filters": 6, "kernel_size": 3},
        {"filters": 6, "kernel_size": (3, 2), "strides": 2, "padding": "same"},
        {"filters": 6, "kernel_size": 3, "groups": 2, "dilation_rate": 2},
        {"filters": 4, "kernel_size": 1, "use_bias": False, "activation": "relu"},
    ],
    ids=["plain", "strided", "grouped-dilated", "pointwise-relu"],
)
def test_equals_conv2d_with_the_standardized_kernel(kwargs):
    x = _x((2, 9, 9, 4))
    conv = StdConv2D(epsilon=1e-6, bias_initializer="random_normal", **kwargs)
    y = _np(conv(x))
    kernel = _np(conv.kernel)
    expected = _conv_with_kernel(conv, _standardize(kernel, 1e-6), x)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_standardized_kernel_has_zero_mean_unit_variance_per_filter():
    conv = StdConv2D(5, 3, groups=1)
    conv.build((None, 8, 8, 2))
    conv.kernel.assign(_x(conv.kernel.shape) * 3.0 + 1.5)
    kernel = _np(conv.standardized_kernel())
    np.testing.assert_allclose(kernel.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(kernel.var(axis=(0, 1, 2)), 1.0, atol=1e-4)
    # The stored kernel itself is not modified.
    assert abs(_np(conv.kernel).mean() - 1.5) < 0.5


def test_output_does_not_depend_on_kernel_scale_and_offset():
    x = _x((1, 6, 6, 3))
    conv = StdConv2D(4, 3, use_bias=False, epsilon=1e-10)
    y = _np(conv(x))
    conv.kernel.assign(conv.kernel * 7.0 + 2.0)
    np.testing.assert_allclose(_np(conv(x)), y, rtol=1e-4, atol=1e-4)


def test_every_conv2d_argument_serializes():
    conv = StdConv2D(
        filters=8,
        kernel_size=(3, 1),
        strides=(2, 1),
        padding="same",
        dilation_rate=1,
        groups=2,
        activation="gelu",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer="l2",
        epsilon=1e-10,
        name="std",
    )
    config = conv.get_config()
    assert config["epsilon"] == 1e-10
    assert config["groups"] == 2 and config["strides"] == (2, 1)
    revived = StdConv2D.from_config(config)
    assert revived.get_config() == config
    assert isinstance(revived, keras.layers.Conv2D)


def test_mixed_precision():
    x = _x((2, 6, 6, 3))
    conv = StdConv2D(4, 3, dtype="mixed_float16")
    y = conv(x)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert keras.backend.standardize_dtype(conv.kernel.dtype) == "float32"
    expected = _conv_with_kernel(conv, _standardize(_np(conv.kernel), 1e-6), x)
    np.testing.assert_allclose(_np(y).astype("float32"), expected, rtol=1e-2, atol=1e-2)


def test_gradient_flows_through_the_standardization():
    # The gradient w.r.t. the stored kernel is orthogonal to a per-filter
    # constant shift (the standardization removes it): a training step
    # changes the kernel but keeps each filter's mean.
    x, target = _x((8, 6, 6, 3)), _x((8, 4, 4, 4), seed=1)
    inputs = keras.Input((6, 6, 3))
    conv = StdConv2D(4, 3, use_bias=False)
    model = keras.Model(inputs, conv(inputs))
    before = _np(conv.kernel).copy()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, target, batch_size=8, epochs=1, verbose=0)
    after = _np(conv.kernel)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(
        after.mean(axis=(0, 1, 2)), before.mean(axis=(0, 1, 2)), atol=1e-5
    )


@pytest.mark.parametrize("epsilon", [0.0, -1e-6, float("nan"), "small", True])
def test_rejects_bad_epsilon(epsilon):
    with pytest.raises(ValueError, match="`epsilon` must be a positive finite float"):
        StdConv2D(4, 3, epsilon=epsilon)


def test_matches_timm_style_torch_formula():
    torch = pytest.importorskip("torch")
    x = _x((2, 7, 7, 4))
    conv = StdConv2D(6, 3, padding="same", groups=2, epsilon=1e-6)
    y = _np(conv(x))
    # timm's StdConv2d: F.batch_norm over the (out, -1) view of the weight,
    # then F.conv2d; the same formula written out for NCHW torch tensors.
    weight = torch.from_numpy(_np(conv.kernel)).permute(3, 2, 0, 1)  # OIHW
    flat = weight.reshape(weight.shape[0], -1)
    mean = flat.mean(dim=1, keepdim=True)
    var = flat.var(dim=1, unbiased=False, keepdim=True)
    weight = ((flat - mean) / torch.sqrt(var + 1e-6)).reshape(weight.shape)
    bias = torch.from_numpy(_np(conv.bias))
    out = torch.nn.functional.conv2d(
        torch.from_numpy(x).permute(0, 3, 1, 2), weight, bias, padding=1, groups=2
    )
    np.testing.assert_allclose(y, out.permute(0, 2, 3, 1).numpy(), atol=1e-4)
