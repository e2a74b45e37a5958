"""Keras' own `batch_normalization_test.py`, run with kerasdl's `BatchNormalization`."""

from kerasdl import layers as kerasdl_layers

from _swap import keras_test_module

keras_tests = keras_test_module(
    "layers.normalization.batch_normalization_test",
    "layers",
    BatchNormalization=kerasdl_layers.BatchNormalization,
)


class TestKerasBatchNormalization(keras_tests.BatchNormalizationTest):
    pass
