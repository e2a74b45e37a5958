"""Keras' own `spatial_dropout_test.py`, run with kerasdl's `SpatialDropout1D`, `SpatialDropout2D`, `SpatialDropout3D`."""

from _swap import keras_test_module

from kerasdl import layers as kerasdl_layers

keras_tests = keras_test_module(
    "layers.regularization.spatial_dropout_test",
    "layers",
    SpatialDropout1D=kerasdl_layers.SpatialDropout1D,
    SpatialDropout2D=kerasdl_layers.SpatialDropout2D,
    SpatialDropout3D=kerasdl_layers.SpatialDropout3D,
)


class TestKerasSpatialDropout(keras_tests.SpatialDropoutTest):
    pass
