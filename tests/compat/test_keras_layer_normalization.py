"""Keras' own `layer_normalization_test.py`, run with kerasdl's `LayerNormalization`."""

from _swap import keras_test_module

from kerasdl import layers as kerasdl_layers

keras_tests = keras_test_module(
    "layers.normalization.layer_normalization_test",
    "layers",
    LayerNormalization=kerasdl_layers.LayerNormalization,
)


class TestKerasLayerNormalization(keras_tests.LayerNormalizationTest):
    pass
