"""Tests of kerasdl.layers.LayerNormalization."""

import keras
import norm_reference as ref
import numpy as np
import pytest

from kerasdl.layers import LayerNormalization
from kerasdl.testing import run_layer_test


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(2.0, 3.0, size=shape).astype("float32")


def _np(v):
    return keras.ops.convert_to_numpy(v)


def test_layer_contract():
    run_layer_test(
        LayerNormalization,
        {"axis": -1, "beta_regularizer": "l2"},
        input_shape=(2, 5, 8),
        expected_output_shape=(2, 5, 8),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
    )


@pytest.mark.parametrize("axis", [-1, 1, [1, 2], [2, 3]])
def test_matches_numpy_and_keras(axis):
    x = _x((3, 4, 5, 6))
    layer = LayerNormalization(
        axis=axis, gamma_initializer="random_normal", beta_initializer="random_normal"
    )
    out = _np(layer(x))
    axes = [axis] if isinstance(axis, int) else axis
    expected = ref.layer_norm(x, _np(layer.gamma), _np(layer.beta), axes=axes)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    theirs = keras.layers.LayerNormalization(axis=axis)
    theirs.build(x.shape)
    theirs.set_weights(layer.get_weights())
    np.testing.assert_allclose(out, _np(theirs(x)), rtol=1e-5, atol=1e-5)
    # Training and inference are the same computation.
    np.testing.assert_allclose(_np(layer(x, training=True)), out, atol=1e-6)


def test_torch_convention_epsilon():
    layer = LayerNormalization(convention="torch")
    assert layer.epsilon == 1e-5
    x = _x((2, 3, 8))
    np.testing.assert_allclose(
        _np(layer(x)), ref.layer_norm(x, None, None, epsilon=1e-5), rtol=1e-4, atol=1e-4
    )
    config = layer.get_config()
    assert config["epsilon"] == 1e-5 and config["convention"] == "torch"
    assert LayerNormalization.from_config(config).get_config() == config


def test_mask_excludes_padded_steps_when_axes_span_time():
    x = _x((2, 6, 4))
    mask = np.ones((2, 6), bool)
    mask[0, 4:] = False
    padded = np.where(mask[..., None], x, 500.0).astype("float32")
    out = _np(LayerNormalization(axis=[1, 2])(padded, mask=mask))
    expected = ref.layer_norm(padded, None, None, axes=[1, 2], mask=mask[..., None])
    np.testing.assert_allclose(out[mask], expected[mask], rtol=1e-4, atol=1e-4)
    # Only the valid steps of sample 0 enter its statistics.
    valid = x[0, :4]
    np.testing.assert_allclose(
        out[0, :4],
        (valid - valid.mean()) / np.sqrt(valid.var() + 1e-3),
        rtol=1e-4,
        atol=1e-4,
    )
    # Per-step statistics (axis=-1) ignore the mask but pass it on.
    inputs = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    assert LayerNormalization()(h)._keras_mask is not None


def test_load_torch_state_dict():
    layer = LayerNormalization(convention="torch")
    layer.build((None, 7))
    rng = np.random.default_rng(0)
    state = {"weight": rng.normal(size=7), "bias": rng.normal(size=7)}
    layer.load_torch_state_dict(state)
    x = _x((3, 7))
    np.testing.assert_allclose(
        _np(layer(x)),
        ref.layer_norm(x, state["weight"], state["bias"], epsilon=1e-5),
        rtol=1e-4,
        atol=1e-4,
    )
    with pytest.raises(ValueError, match="running_mean"):
        layer.load_torch_state_dict(dict(state, running_mean=np.zeros(7)))


@pytest.mark.parametrize(
    "kwargs, shape, message",
    [
        ({"axis": 2}, (2, 4), "axis=2"),
        ({"axis": [0, 1]}, (2, 4), "batch axis"),
        ({"axis": [1, 1]}, (2, 4, 4), "duplicate"),
        ({}, (4,), "rank >= 2"),
    ],
)
def test_bad_input_shapes(kwargs, shape, message):
    with pytest.raises(ValueError, match=message):
        LayerNormalization(**kwargs).build(shape)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epsilon": 0}, "epsilon=0"),
        ({"axis": []}, "axis=\\[\\]"),
        ({"convention": "Torch"}, "convention='Torch'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LayerNormalization(**kwargs)


def test_axis_of_the_wrong_type_is_a_type_error():
    # As Keras raises: a TypeError naming what was received.
    with pytest.raises(TypeError, match="axis='last'"):
        LayerNormalization(axis="last")


def test_rms_scaling_is_keras_deprecated_variant():
    # Keras' `rms_scaling=True`: x * rsqrt(var(x) + epsilon) * gamma, with no
    # centering and no beta; deprecated there and here.
    x = _x((3, 5))
    with pytest.warns(UserWarning, match="RMSNormalization"):
        layer = LayerNormalization(rms_scaling=True, gamma_initializer="random_normal")
    out = _np(layer(x))
    assert [w.name for w in layer.weights] == ["gamma"]
    gamma = _np(layer.gamma)
    expected = x / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-3) * gamma
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    with pytest.warns(UserWarning):
        theirs = keras.layers.LayerNormalization(rms_scaling=True)
    theirs.build(x.shape)
    theirs.set_weights(layer.get_weights())
    np.testing.assert_allclose(out, _np(theirs(x)), rtol=1e-5, atol=1e-5)
    config = layer.get_config()
    assert config["rms_scaling"] is True
    with pytest.warns(UserWarning):
        assert LayerNormalization.from_config(config).get_config() == config


@pytest.mark.parametrize("axis", [-1, [-2, -1]])
def test_inputs_of_another_rank_than_at_build(axis):
    # As Keras: the weights were built for the axes' sizes, which inputs of
    # another rank may share.
    layer = LayerNormalization(axis=axis, gamma_initializer="random_normal")
    layer.build((2, 4, 6))
    x = _x((7, 3, 4, 6))
    axes = [-1] if axis == -1 else axis
    gamma = _np(layer.gamma)
    expected = ref.layer_norm(x, gamma, _np(layer.beta), axes=axes)
    np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-4, atol=1e-4)
    theirs = keras.layers.LayerNormalization(axis=axis)
    theirs.build((2, 4, 6))
    theirs.set_weights(layer.get_weights())
    np.testing.assert_allclose(_np(layer(x)), _np(theirs(x)), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="incompatible"):
        layer(_x((2, 4, 5)))
