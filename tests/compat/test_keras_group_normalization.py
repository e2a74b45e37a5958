"""Keras' own `group_normalization_test.py`, run with kerasdl's `GroupNormalization`."""

from kerasdl import layers as kerasdl_layers

from _swap import keras_test_module

keras_tests = keras_test_module(
    "layers.normalization.group_normalization_test",
    "layers",
    GroupNormalization=kerasdl_layers.GroupNormalization,
)


class TestKerasGroupNormalization(keras_tests.GroupNormalizationTest):
    pass
