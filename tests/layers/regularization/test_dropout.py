import keras
import numpy as np
import pytest

import kerasdl
from kerasdl.testing import run_layer_test


def test_layer_contract():
    run_layer_test(
        kerasdl.layers.Dropout,
        {"rate": 0.5, "noise_shape": (None, 1, 3), "seed": 7},
        input_shape=(2, 4, 3),
        expected_output_shape=(2, 4, 3),
        expected_num_trainable_weights=0,
        run_training_step=False,  # no weights to train
    )


def test_inverted_dropout_statistics():
    rate = 0.3
    x = np.ones((200, 500), "float32")
    y = keras.ops.convert_to_numpy(
        kerasdl.layers.Dropout(rate, seed=0)(x, training=True)
    )
    dropped = y == 0
    assert abs(dropped.mean() - rate) < 0.01
    # Kept units are scaled by 1 / (1 - rate), so the mean is preserved.
    np.testing.assert_allclose(y[~dropped], 1 / (1 - rate), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.02


def test_identity_at_inference():
    x = np.random.default_rng(0).normal(size=(8, 16)).astype("float32")
    layer = kerasdl.layers.Dropout(0.5, seed=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(x, training=False)), x
    )


def test_rate_zero_is_identity_in_training():
    x = np.random.default_rng(0).normal(size=(8, 16)).astype("float32")
    y = kerasdl.layers.Dropout(0.0)(x, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(y), x)


def test_noise_shape_shares_mask_over_timesteps():
    x = np.ones((16, 10, 8), "float32")
    y = keras.ops.convert_to_numpy(
        kerasdl.layers.Dropout(0.5, noise_shape=(None, 1, None), seed=1)(
            x, training=True
        )
    )
    # Every timestep has the same mask as the first one.
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1, :], y.shape))
    assert 0 < (y == 0).mean() < 1


def test_same_seed_same_masks_and_masks_change_between_calls():
    x = np.ones((4, 64), "float32")
    first = kerasdl.layers.Dropout(0.5, seed=3)
    second = kerasdl.layers.Dropout(0.5, seed=3)
    a1, a2 = (keras.ops.convert_to_numpy(first(x, training=True)) for _ in "12")
    b1 = keras.ops.convert_to_numpy(second(x, training=True))
    np.testing.assert_array_equal(a1, b1)
    assert not np.array_equal(a1, a2)


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_fresh_masks_every_step_inside_compiled_fit():
    # The seed generator state is a variable, so a jit-compiled train step
    # draws a new mask every step instead of baking one in.
    inputs = keras.Input((32,))
    outputs = kerasdl.layers.Dropout(0.5, seed=0)(inputs)
    model = keras.Model(inputs, outputs)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(logs["loss"]))

    model.compile(loss="mse", jit_compile=True)
    x = np.ones((1, 32), "float32")
    model.fit(x, np.zeros_like(x), epochs=4, verbose=0, callbacks=[Record()])
    # loss = mean(y²) = (kept fraction) * 4, which differs between masks.
    assert len(set(seen)) > 1


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan"), float("inf")])
def test_rate_outside_unit_interval_is_refused(rate):
    with pytest.raises(
        ValueError, match=r"argument `rate`\..*between 0 and 1.*Received: rate="
    ):
        kerasdl.layers.Dropout(rate)


@pytest.mark.parametrize("rate", ["0.5", True, None])
def test_rate_of_wrong_type_is_a_type_error(rate):
    # Keras raises TypeError for a string rate (from its comparison); so do we,
    # for every non-number, with the value and type named.
    with pytest.raises(TypeError, match=r"`rate`.*Received: rate=.* of type"):
        kerasdl.layers.Dropout(rate)


def test_rate_one_drops_every_unit():
    # Keras accepts rate=1; the output is zeros in training, finite gradients.
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    layer = kerasdl.layers.Dropout(1.0, seed=0)
    assert layer.get_config()["rate"] == 1.0
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(x, training=True)), np.zeros_like(x)
    )
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)


@pytest.mark.parametrize(
    "noise_shape, match",
    [
        ("batch", "Expected a tuple or list of integers"),
        (3, "Expected an iterable of integers"),
        ((None, 1.5), "Expected all elements to be integers or None"),
        ((None, True), "Expected all elements to be integers or None"),
        ((None, 0), "Expected all dimensions to be positive integers or None"),
        ((-1, 2), "Expected all dimensions to be positive integers or None"),
    ],
)
def test_bad_noise_shape_is_refused(noise_shape, match):
    with pytest.raises(ValueError, match=match) as error:
        kerasdl.layers.Dropout(0.5, noise_shape=noise_shape)
    assert f"Received: noise_shape={noise_shape!r}" in str(error.value)


@pytest.mark.parametrize("noise_shape", [(4, 3), (4, 2, 1), (4, 3, 5, 1)])
def test_noise_shape_not_fitting_the_input_is_a_clear_error(noise_shape):
    # Before, the backend failed deep in its kernels (TensorFlow inside
    # `SelectV2`: "condition [4,3], then [4,3,5] ... must be broadcastable").
    layer = kerasdl.layers.Dropout(0.5, noise_shape=noise_shape, seed=0)
    with pytest.raises(ValueError, match=r"one entry per input axis.*\(4, 3, 5\)"):
        layer(np.ones((4, 3, 5), "float32"), training=True)


def test_noise_shape_iterables_become_tuples_of_ints():
    layer = kerasdl.layers.Dropout(0.5, noise_shape=[np.int64(4), None, 1])
    assert layer.noise_shape == (4, None, 1)
    assert all(type(dim) is int for dim in layer.noise_shape if dim is not None)


def test_subclass_build_runs_once_on_first_call():
    # Regression: the layer set `built = True` in `__init__`, so a subclass's
    # own `build()` (creating a weight here) never ran.
    assert kerasdl.layers.Dropout(0.5).built  # no weights: built at once
    shapes = []

    class ScaledDropout(kerasdl.layers.Dropout):
        def build(self, input_shape):
            shapes.append(tuple(input_shape))
            self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

        def call(self, inputs, training=False):
            return super().call(inputs, training) * self.scale

    layer = ScaledDropout(0.5, seed=0)
    assert not layer.built
    x = np.ones((2, 3), "float32")
    layer(x)
    layer(x, training=True)
    assert shapes == [(2, 3)]
    assert layer.built and len(layer.weights) == 1
