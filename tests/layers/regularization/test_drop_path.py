import keras
import numpy as np
import pytest

import kerasdl
from kerasdl.layers import drop_path
from kerasdl.testing import run_layer_test


def test_layer_contract():
    run_layer_test(
        kerasdl.layers.DropPath,
        {"rate": 0.2, "seed": 3},
        input_shape=(2, 4, 3),
        expected_output_shape=(2, 4, 3),
        expected_num_trainable_weights=0,
        run_training_step=False,  # no weights to train
    )


def test_whole_samples_are_dropped_and_rescaled():
    rate = 0.25
    x = np.ones((2000, 3, 4), "float32")
    y = keras.ops.convert_to_numpy(
        kerasdl.layers.DropPath(rate, seed=0)(x, training=True)
    )
    per_sample = y.reshape(len(y), -1)
    assert np.all(per_sample.min(1) == per_sample.max(1))
    kept = per_sample[:, 0] != 0
    assert abs((1 - kept.mean()) - rate) < 0.03
    np.testing.assert_allclose(per_sample[kept], 1 / (1 - rate), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.05


def test_identity_at_inference():
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    y = kerasdl.layers.DropPath(0.5, seed=0)(x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(y), x)


def test_functional_form_matches_numpy_formula():
    x = np.random.default_rng(1).normal(size=(64, 6)).astype("float32")
    y = keras.ops.convert_to_numpy(drop_path(x, rate=0.5, training=True, seed=4))
    kept = np.any(y != 0, axis=1)
    expected = np.where(kept[:, None], x / 0.5, 0.0)
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    assert 0 < kept.sum() < len(x)
    # Same integer seed, same mask; not training, the input itself.
    again = keras.ops.convert_to_numpy(drop_path(x, 0.5, True, seed=4))
    np.testing.assert_array_equal(y, again)
    assert drop_path(x, 0.5, training=False) is x


def test_residual_block_in_functional_model():
    inputs = keras.Input((8, 4))  # (batch, steps, dim)
    branch = keras.layers.Dense(4)(inputs)
    outputs = inputs + kerasdl.layers.DropPath(0.1, seed=0)(branch)
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse")
    x = np.ones((4, 8, 4), "float32")
    history = model.fit(x, x, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("rate", [-0.5, 1.5, 2])
def test_rate_outside_unit_interval_is_refused(rate):
    with pytest.raises(ValueError, match=f"Received: rate={rate}"):
        kerasdl.layers.DropPath(rate)
    with pytest.raises(ValueError, match=f"Received: rate={rate}"):
        drop_path(np.ones((2, 2)), rate, training=True)


def test_rate_one_drops_every_sample():
    x = np.ones((4, 3), "float32")
    for y in (
        kerasdl.layers.DropPath(1.0, seed=0)(x, training=True),
        drop_path(x, 1.0, training=True, seed=0),
    ):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(y), 0 * x)


def test_subclass_build_runs_once_on_first_call():
    # Regression: the layer set `built = True` in `__init__`, so a subclass's
    # own `build()` never ran.
    assert kerasdl.layers.DropPath(0.5).built  # no weights: built at once
    shapes = []

    class WithBuild(kerasdl.layers.DropPath):
        def build(self, input_shape):
            shapes.append(tuple(input_shape))
            self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

    layer = WithBuild(0.5, seed=0)
    assert not layer.built
    x = np.ones((2, 3), "float32")
    layer(x)
    layer(x, training=True)
    assert shapes == [(2, 3)]
    assert layer.built and len(layer.weights) == 1


def test_keras_mask_passes_through_to_the_next_layer(assert_mask_reaches_next_layer):
    assert_mask_reaches_next_layer(kerasdl.layers.DropPath(1e-6, seed=0))
