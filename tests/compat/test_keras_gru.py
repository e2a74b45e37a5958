"""Keras' own `gru_test.py`, run with kerasdl's `GRU`."""

from _swap import keras_test_module

from kerasdl import layers as kerasdl_layers

keras_tests = keras_test_module("layers.rnn.gru_test", "layers", GRU=kerasdl_layers.GRU)


class TestKerasGRU(keras_tests.GRUTest):
    pass
