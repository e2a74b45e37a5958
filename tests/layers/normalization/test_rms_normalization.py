"""Tests of kerasdl.layers.RMSNormalization."""

import keras
import numpy as np
import pytest

from kerasdl.layers import RMSNormalization
from kerasdl.testing import run_layer_test


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(2.0, 3.0, size=shape).astype("float32")


def _np(v):
    return keras.ops.convert_to_numpy(v)


def _reference(x, scale, axes, epsilon, mask=None):
    """NumPy float64: x / sqrt(mean(x ** 2 over axes) + epsilon) * scale."""
    x = np.asarray(x, "float64")
    axes = tuple(sorted(a % x.ndim for a in axes))
    if mask is None:
        mean_square = np.mean(x**2, axis=axes, keepdims=True)
    else:
        w = np.broadcast_to(np.asarray(mask, "float64")[..., None], x.shape)
        mean_square = (x**2 * w).sum(axes, keepdims=True) / w.sum(axes, keepdims=True)
    out = x / np.sqrt(mean_square + epsilon)
    if scale is not None:
        shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
        out = out * np.reshape(scale, shape)
    return out


def test_layer_contract():
    run_layer_test(
        RMSNormalization,
        {"axis": -1, "scale_regularizer": "l2"},
        input_shape=(2, 5, 8),
        expected_output_shape=(2, 5, 8),
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=0,
    )


def test_layer_contract_torch_convention_without_scale():
    run_layer_test(
        RMSNormalization,
        {"axis": [-2, -1], "use_scale": False, "convention": "torch"},
        input_shape=(2, 5, 8),
        expected_output_shape=(2, 5, 8),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
    )


@pytest.mark.parametrize("axis", [-1, 1, [1, 2], [2, 3]])
def test_matches_numpy_and_keras(axis):
    x = _x((3, 4, 5, 6))
    layer = RMSNormalization(axis=axis, scale_initializer="random_normal")
    out = _np(layer(x))
    axes = [axis] if isinstance(axis, int) else axis
    expected = _reference(x, _np(layer.scale), axes, 1e-6)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # The built-in, with the same weight under the same name (Keras 3.15 only
    # broadcasts `scale` over trailing axes: axis=1 or [1, 2] fail there).
    if axes not in ([-1], [2, 3]):
        return
    theirs = keras.layers.RMSNormalization(axis=axis)
    theirs.build(x.shape)
    assert [w.name for w in theirs.weights] == [w.name for w in layer.weights]
    theirs.set_weights(layer.get_weights())
    np.testing.assert_allclose(out, _np(theirs(x)), rtol=1e-5, atol=1e-5)


def test_gradients_match_numpy_free_autodiff_reference():
    # Whichever path the host takes (closed form on CPU), the gradients are
    # those of the formula written with keras.ops.
    x = keras.ops.convert_to_tensor(_x((4, 3, 16)))
    layer = RMSNormalization(scale_initializer="random_normal")
    layer.build(x.shape)
    upstream = keras.ops.convert_to_tensor(_x((4, 3, 16), seed=1))

    def formula(x, scale):
        ms = keras.ops.mean(keras.ops.square(x), axis=-1, keepdims=True)
        return x * keras.ops.rsqrt(ms + 1e-6) * scale

    if keras.backend.backend() == "jax":
        import jax

        def loss(fn):
            return lambda x, s: keras.ops.sum(fn(x, s) * upstream)

        ours = jax.grad(
            loss(lambda x, s: layer.stateless_call([s], [], x)[0]), argnums=(0, 1)
        )(x, layer.scale.value)
        want = jax.grad(loss(formula), argnums=(0, 1))(x, layer.scale.value)
    else:
        import tensorflow as tf

        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            a = keras.ops.sum(layer(x) * upstream)
            b = keras.ops.sum(formula(x, layer.scale) * upstream)
        ours = tape.gradient(a, [x, layer.scale])
        want = tape.gradient(b, [x, layer.scale])
    for got, expected in zip(ours, want):
        np.testing.assert_allclose(_np(got), _np(expected), rtol=1e-4, atol=1e-4)


def test_torch_convention_default_epsilon_is_machine_epsilon():
    layer = RMSNormalization(convention="torch", use_scale=False)
    assert layer.epsilon is None  # resolved per compute dtype, as in PyTorch
    x = np.full((2, 4), 1e-4, "float32")  # mean square 1e-8, below float32 eps
    expected = _reference(x, None, [-1], np.finfo("float32").eps)
    np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-5)
    assert RMSNormalization(epsilon=1e-5, convention="torch").epsilon == 1e-5
    assert RMSNormalization().epsilon == 1e-6  # Keras' default


def test_mask_excludes_padded_steps_when_axes_span_time():
    x = _x((2, 6, 4))
    mask = np.ones((2, 6), bool)
    mask[0, 4:] = False
    padded = np.where(mask[..., None], x, 500.0).astype("float32")
    out = _np(RMSNormalization(axis=[1, 2])(padded, mask=mask))
    expected = _reference(padded, None, [1, 2], 1e-6, mask=mask)
    np.testing.assert_allclose(out[mask], expected[mask], rtol=1e-4, atol=1e-4)


def test_mixed_precision_statistics_in_float32():
    # float32 inputs beyond float16's range: no inf before the statistics.
    x = (7e4 + 1e3 * np.random.default_rng(0).normal(size=(3, 8))).astype("float32")
    layer = RMSNormalization(dtype="mixed_float16")
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert keras.backend.standardize_dtype(layer.scale.dtype) == "float32"
    expected = _reference(x, None, [-1], 1e-6)
    np.testing.assert_allclose(_np(y).astype("float32"), expected, rtol=2e-3)


def test_config_round_trip_keeps_every_argument():
    layer = RMSNormalization(
        axis=[1, 2],
        epsilon=1e-5,
        use_scale=False,
        scale_initializer="zeros",
        scale_constraint="non_neg",
        convention="torch",
    )
    config = layer.get_config()
    for key in ("axis", "epsilon", "use_scale", "scale_initializer", "convention"):
        assert key in config
    assert "gamma_initializer" not in config and "center" not in config
    assert RMSNormalization.from_config(config).get_config() == config
    # A Keras RMSNormalization config loads as it is.
    keras_config = keras.layers.RMSNormalization(axis=-1, epsilon=1e-5).get_config()
    assert RMSNormalization.from_config(keras_config).epsilon == 1e-5


def test_load_torch_state_dict():
    layer = RMSNormalization(convention="torch")
    layer.build((None, 7))
    weight = np.random.default_rng(0).normal(size=7)
    layer.load_torch_state_dict({"weight": weight})
    np.testing.assert_allclose(_np(layer.scale), weight, rtol=1e-6)
    with pytest.raises(ValueError, match="missing keys"):
        layer.load_torch_state_dict({})
    with pytest.raises(ValueError, match="bias"):
        layer.load_torch_state_dict({"weight": weight, "bias": weight})


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"epsilon": 0}, ValueError, "epsilon=0"),
        ({"axis": "last"}, TypeError, "axis='last'"),
        ({"convention": "Torch"}, ValueError, "convention='Torch'"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        RMSNormalization(**kwargs)


def test_batch_axis_is_rejected():
    with pytest.raises(ValueError, match="batch axis"):
        RMSNormalization(axis=0).build((2, 3))


@pytest.mark.parametrize(
    "kwargs", [{"scale": False}, {"center": True}, {"gamma_regularizer": "l2"}]
)
def test_layer_normalization_only_arguments_are_refused(kwargs):
    # They used to be silently dropped (`gamma_regularizer`), or to fail with
    # "got multiple values for keyword argument" (`scale`, `center`).
    with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
        RMSNormalization(**kwargs)
