"""Tests of kerasdl.layers.InstanceNormalization."""

import keras
import norm_reference as ref
import numpy as np
import pytest

from kerasdl.layers import InstanceNormalization
from kerasdl.testing import run_layer_test


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(2.0, 3.0, size=shape).astype("float32")


def _np(v):
    return keras.ops.convert_to_numpy(v)


def test_layer_contract():
    run_layer_test(
        InstanceNormalization,
        {"track_running_stats": True, "momentum": 0.9},
        input_shape=(2, 4, 4, 3),
        expected_output_shape=(2, 4, 4, 3),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=2,
    )


@pytest.mark.parametrize(
    "shape, axis", [((2, 5, 5, 3), -1), ((2, 3, 5, 5), 1), ((3, 7, 4), -1)]
)
def test_matches_numpy_and_keras_group_norm(shape, axis):
    x = _x(shape)
    layer = InstanceNormalization(
        axis=axis, gamma_initializer="random_normal", beta_initializer="random_normal"
    )
    out = _np(layer(x, training=True))
    expected, _, _ = ref.instance_norm_train(
        x, _np(layer.gamma), _np(layer.beta), axis=axis
    )
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_np(layer(x, training=False)), out, atol=1e-6)
    theirs = keras.layers.GroupNormalization(groups=-1, axis=axis)
    theirs.build(x.shape)
    theirs.set_weights(layer.get_weights())
    np.testing.assert_allclose(out, _np(theirs(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("convention", ["keras", "torch"])
def test_track_running_stats(convention):
    layer = InstanceNormalization(
        track_running_stats=True, convention=convention, axis=1
    )
    momentum, epsilon = layer.momentum, layer.epsilon
    assert (momentum, epsilon) == (
        (0.99, 1e-3) if convention == "keras" else (0.1, 1e-5)
    )
    x = _x((3, 4, 5, 6))
    layer.build(x.shape)
    mm, mv = np.zeros(4), np.ones(4)
    for step in range(3):
        xs = _x(x.shape, seed=step)
        expected, mm, mv = ref.instance_norm_train(
            xs,
            np.ones(4),
            np.zeros(4),
            mm,
            mv,
            axis=1,
            momentum=momentum,
            epsilon=epsilon,
            convention=convention,
        )
        np.testing.assert_allclose(
            _np(layer(xs, training=True)), expected, rtol=1e-4, atol=1e-4
        )
    np.testing.assert_allclose(_np(layer.moving_mean), mm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(layer.moving_variance), mv, rtol=1e-5, atol=1e-6)
    expected = ref.batch_norm_inference(
        x, np.ones(4), np.zeros(4), mm, mv, axis=1, epsilon=epsilon
    )
    np.testing.assert_allclose(
        _np(layer(x, training=False)), expected, rtol=1e-4, atol=1e-4
    )


def test_mask_excludes_padded_steps():
    x = _x((2, 6, 3))
    mask = np.ones((2, 6), bool)
    mask[0, 2:] = False
    padded = np.where(mask[..., None], x, 300.0).astype("float32")
    out = _np(InstanceNormalization()(padded, mask=mask))
    valid = x[0, :2]
    np.testing.assert_allclose(
        out[0, :2],
        (valid - valid.mean(0)) / np.sqrt(valid.var(0) + 1e-3),
        rtol=1e-4,
        atol=1e-4,
    )


def test_load_torch_state_dict():
    layer = InstanceNormalization(axis=1, track_running_stats=True, convention="torch")
    layer.build((None, 3, 4, 4))
    rng = np.random.default_rng(0)
    state = {
        "weight": rng.normal(size=3),
        "bias": rng.normal(size=3),
        "running_mean": rng.normal(size=3),
        "running_var": rng.uniform(0.5, 2, size=3),
        "num_batches_tracked": np.array(3),
    }
    layer.load_torch_state_dict(state)
    x = _x((2, 3, 4, 4))
    expected = ref.batch_norm_inference(
        x,
        state["weight"],
        state["bias"],
        state["running_mean"],
        state["running_var"],
        axis=1,
        epsilon=1e-5,
    )
    np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-4, atol=1e-4)
    untracked = InstanceNormalization(axis=1)
    untracked.build((None, 3, 4, 4))
    with pytest.raises(ValueError, match="running_mean"):
        untracked.load_torch_state_dict(state)
    untracked.load_torch_state_dict(state, strict=False)
    np.testing.assert_allclose(_np(untracked.gamma), state["weight"], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, shape, message",
    [
        ({}, (2, 4), r"rank >= 3. Received: input_shape=\(2, 4\)"),
        ({"axis": -4}, (2, 4, 4), "axis=-4"),
    ],
)
def test_bad_input_shapes(kwargs, shape, message):
    with pytest.raises(ValueError, match=message):
        InstanceNormalization(**kwargs).build(shape)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"momentum": -0.1}, "momentum=-0.1"),
        ({"axis": [1, 2]}, r"axis=\[1, 2\]"),
        ({"convention": None}, "convention=None"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InstanceNormalization(**kwargs)


def test_track_running_stats_under_float64_policy():
    # The float32 instance statistics used to be added to the float64 moving
    # variables, which TensorFlow refuses.
    x = _x((2, 5, 3)).astype("float64")
    layer = InstanceNormalization(
        track_running_stats=True, momentum=0.5, dtype="float64"
    )
    layer(x, training=True)  # (JAX without x64 computes in float32)
    np.testing.assert_allclose(
        _np(layer.moving_mean), 0.5 * x.mean(axis=(0, 1)), rtol=1e-5
    )
