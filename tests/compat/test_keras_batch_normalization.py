"""Keras' own `batch_normalization_test.py`, run with kerasdl's `BatchNormalization`."""

from _swap import keras_test_module

from kerasdl import layers as kerasdl_layers

keras_tests = keras_test_module(
    "layers.normalization.batch_normalization_test",
    "layers",
    BatchNormalization=kerasdl_layers.BatchNormalization,
)


class TestKerasBatchNormalization(keras_tests.BatchNormalizationTest):
    pass
