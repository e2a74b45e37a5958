"""Keras' own `dropout_test.py`, run with kerasdl's `Dropout`."""

from _swap import keras_test_module

from kerasdl import layers as kerasdl_layers

keras_tests = keras_test_module(
    "layers.regularization.dropout_test",
    "layers",
    Dropout=kerasdl_layers.Dropout,
)


class TestKerasDropout(keras_tests.DropoutTest):
    pass
