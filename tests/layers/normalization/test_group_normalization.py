"""Tests of kerasdl.layers.GroupNormalization."""

import keras
import norm_reference as ref
import numpy as np
import pytest

from kerasdl.layers import GroupNormalization
from kerasdl.testing import run_layer_test


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(2.0, 3.0, size=shape).astype("float32")


def _np(v):
    return keras.ops.convert_to_numpy(v)


def test_layer_contract():
    run_layer_test(
        GroupNormalization,
        {"groups": 2, "gamma_constraint": "non_neg"},
        input_shape=(2, 4, 4, 8),
        expected_output_shape=(2, 4, 4, 8),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
    )


@pytest.mark.parametrize("groups", [1, 2, 4, -1])
@pytest.mark.parametrize("shape", [(2, 5, 5, 8), (3, 7, 8), (4, 8)])
def test_matches_numpy_and_keras(groups, shape):
    x = _x(shape)
    layer = GroupNormalization(
        groups=groups,
        gamma_initializer="random_normal",
        beta_initializer="random_normal",
    )
    out = _np(layer(x))
    expected = ref.group_norm(x, _np(layer.gamma), _np(layer.beta), groups=groups)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    theirs = keras.layers.GroupNormalization(groups=groups)
    theirs.build(x.shape)
    theirs.set_weights(layer.get_weights())
    np.testing.assert_allclose(out, _np(theirs(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="gradients via tf.GradientTape"
)
def test_gradients_match_keras():
    # The statistics are pooled from per-channel moments; the gradients with
    # respect to the input and both weights must still be the built-in's.
    import tensorflow as tf

    x = tf.constant(_x((3, 4, 5, 8)))
    upstream = tf.constant(_x((3, 4, 5, 8), seed=1))
    ours = GroupNormalization(groups=4, gamma_initializer="random_normal")
    ours.build(x.shape)
    theirs = keras.layers.GroupNormalization(groups=4)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    grads = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * upstream)
        grads.append(tape.gradient(loss, [x, *layer.trainable_weights]))
    for a, b in zip(*grads):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-4, atol=1e-4)


def test_inputs_far_from_zero():
    # Groups whose channels have very different means: the pooled variance
    # adds the spread of the channel means, with no cancellation.
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(2, 6, 6, 8)) + np.arange(8) * 100.0 + 300.0).astype("float32")
    out = _np(GroupNormalization(groups=2)(x))
    expected = ref.group_norm(x, np.ones(8), np.zeros(8), groups=2)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_channels_first():
    x = _x((2, 8, 5, 5))
    layer = GroupNormalization(groups=4, axis=1, gamma_initializer="random_normal")
    out = _np(layer(x))
    expected = ref.group_norm(x, _np(layer.gamma), _np(layer.beta), groups=4, axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    last = GroupNormalization(groups=4)
    last.build((None, 5, 5, 8))
    last.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        np.moveaxis(_np(last(np.moveaxis(x, 1, -1))), -1, 1), out, atol=1e-5
    )


def test_torch_convention_and_state_dict():
    layer = GroupNormalization(groups=3, axis=1, convention="torch")
    assert layer.epsilon == 1e-5
    layer.build((None, 6, 4))
    rng = np.random.default_rng(0)
    state = {"weight": rng.normal(size=6), "bias": rng.normal(size=6)}
    layer.load_torch_state_dict(state)
    x = _x((2, 6, 4))
    expected = ref.group_norm(
        x, state["weight"], state["bias"], groups=3, axis=1, epsilon=1e-5
    )
    np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-4, atol=1e-4)


def test_mask_excludes_padded_steps():
    x = _x((2, 6, 4))
    mask = np.ones((2, 6), bool)
    mask[1, 3:] = False
    padded = np.where(mask[..., None], x, -400.0).astype("float32")
    out = _np(GroupNormalization(groups=2)(padded, mask=mask))
    valid = x[1, :3].reshape(3, 2, 2)  # (time, group, channels per group)
    mean = valid.mean(axis=(0, 2), keepdims=True)
    var = valid.var(axis=(0, 2), keepdims=True)
    expected = ((valid - mean) / np.sqrt(var + 1e-3)).reshape(3, 4)
    np.testing.assert_allclose(out[1, :3], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        out[0], _np(GroupNormalization(groups=2)(x[:1]))[0], rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize(
    "kwargs, shape, message",
    [
        ({"groups": 3}, (2, 4, 8), "groups=3"),
        ({"groups": 16}, (2, 4, 8), "groups=16"),
        ({"groups": 2, "axis": 3}, (2, 4, 8), "axis=3"),
        ({"groups": 2}, (8,), "rank >= 2"),
    ],
)
def test_bad_input_shapes(kwargs, shape, message):
    with pytest.raises(ValueError, match=message):
        GroupNormalization(**kwargs).build(shape)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"groups": 0}, "groups=0"),
        ({"groups": 2.5}, "groups=2.5"),
        ({"epsilon": "small"}, "epsilon='small'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GroupNormalization(**kwargs)
