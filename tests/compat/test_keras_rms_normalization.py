"""Keras' own `rms_normalization_test.py`, run with kerasdl's `RMSNormalization`."""

from _swap import keras_test_module

from kerasdl import layers as kerasdl_layers

keras_tests = keras_test_module(
    "layers.normalization.rms_normalization_test",
    "layers",
    RMSNormalization=kerasdl_layers.RMSNormalization,
)


class TestKerasRMSNormalization(keras_tests.RMSNormalizationTest):
    pass
