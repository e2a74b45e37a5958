import keras
import numpy as np
import pytest

import kerasdl
from kerasdl.testing import run_layer_test

CASES = [
    (kerasdl.layers.SpatialDropout1D, (2, 5, 3)),
    (kerasdl.layers.SpatialDropout2D, (2, 4, 4, 3)),
    (kerasdl.layers.SpatialDropout3D, (2, 3, 3, 3, 2)),
]


@pytest.mark.parametrize("layer_cls, input_shape", CASES)
def test_layer_contract(layer_cls, input_shape):
    run_layer_test(
        layer_cls,
        {"rate": 0.5, "data_format": "channels_last", "seed": 1},
        input_shape=input_shape,
        expected_output_shape=input_shape,
        expected_num_trainable_weights=0,
        run_training_step=False,  # no weights to train
    )


@pytest.mark.parametrize("layer_cls, input_shape", CASES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_whole_channels_are_dropped(layer_cls, input_shape, data_format):
    rate = 0.4
    batch, channels = 256, 16
    spatial = input_shape[1:-1]
    if data_format == "channels_last":
        shape, channel_axis = (batch, *spatial, channels), -1
    else:
        shape, channel_axis = (batch, channels, *spatial), 1
    y = keras.ops.convert_to_numpy(
        layer_cls(rate, data_format=data_format, seed=0)(
            np.ones(shape, "float32"), training=True
        )
    )
    # (batch, channels, positions): each channel is constant over positions.
    per_channel = np.moveaxis(y, channel_axis, 1).reshape(batch, channels, -1)
    assert np.all(per_channel.min(-1) == per_channel.max(-1))
    kept = per_channel[..., 0] != 0
    assert abs((1 - kept.mean()) - rate) < 0.04
    np.testing.assert_allclose(per_channel[kept], 1 / (1 - rate), rtol=1e-6)


@pytest.mark.parametrize("layer_cls, input_shape", CASES)
def test_identity_at_inference(layer_cls, input_shape):
    x = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    y = layer_cls(0.5, seed=0)(x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(y), x)


@pytest.mark.parametrize("layer_cls, input_shape", CASES)
def test_wrong_rank_is_refused(layer_cls, input_shape):
    x = np.ones(input_shape[:-1], "float32")
    with pytest.raises(ValueError, match=f"expected ndim={len(input_shape)}"):
        layer_cls(0.5)(x, training=True)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="Received: rate=1.5"):
        kerasdl.layers.SpatialDropout2D(1.5)
    with pytest.raises(TypeError, match="Received: rate='0.5'"):
        kerasdl.layers.SpatialDropout2D("0.5")
    with pytest.raises(ValueError, match="Received: data_format='NHWC'"):
        kerasdl.layers.SpatialDropout2D(0.5, data_format="NHWC")


@pytest.mark.parametrize("layer_cls, input_shape", CASES)
def test_rate_one_drops_every_channel(layer_cls, input_shape):
    x = np.ones(input_shape, "float32")
    y = layer_cls(1.0, seed=0)(x, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(y), np.zeros_like(x))


@pytest.mark.parametrize("layer_cls, input_shape", CASES)
def test_subclass_build_runs_once_on_first_call(layer_cls, input_shape):
    # Regression: the layers set `built = True` in `__init__`, so a subclass's
    # own `build()` never ran.
    assert layer_cls(0.5).built  # no weights: built at once
    shapes = []

    class WithBuild(layer_cls):
        def build(self, input_shape):
            shapes.append(tuple(input_shape))
            self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

    layer = WithBuild(0.5, seed=0)
    assert not layer.built
    x = np.ones(input_shape, "float32")
    layer(x)
    layer(x, training=True)
    assert shapes == [input_shape]
    assert layer.built and len(layer.weights) == 1


def test_default_data_format_follows_keras_config():
    layer = kerasdl.layers.SpatialDropout2D(0.5)
    assert layer.data_format == keras.config.image_data_format()


def test_keras_mask_passes_through_to_the_next_layer(assert_mask_reaches_next_layer):
    # As with Keras' layer (a Dropout subclass).
    assert_mask_reaches_next_layer(kerasdl.layers.SpatialDropout1D(1e-6, seed=0))


def test_spatial_dropout1d_takes_seed_second_as_in_keras():
    # keras.layers.SpatialDropout1D(rate, seed): it has no `data_format`.
    layer = kerasdl.layers.SpatialDropout1D(0.5, 7)
    assert layer.seed == 7 and layer.data_format == "channels_last"
    x = np.ones((4, 3, 8), "float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(x, training=True)),
        keras.ops.convert_to_numpy(
            kerasdl.layers.SpatialDropout1D(0.5, seed=7)(x, training=True)
        ),
    )
