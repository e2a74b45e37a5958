"""Keras' own `early_stopping_test.py`, run with kerasdl's `EarlyStopping`."""

from _swap import keras_test_module

from kerasdl import callbacks as kerasdl_callbacks

keras_tests = keras_test_module(
    "callbacks.early_stopping_test",
    "callbacks",
    EarlyStopping=kerasdl_callbacks.EarlyStopping,
)


class TestKerasEarlyStopping(keras_tests.EarlyStoppingTest):
    pass
