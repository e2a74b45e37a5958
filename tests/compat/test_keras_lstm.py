"""Keras' own `lstm_test.py`, run with kerasdl's `LSTM`."""

from _swap import keras_test_module

from kerasdl import layers as kerasdl_layers

keras_tests = keras_test_module(
    "layers.rnn.lstm_test", "layers", LSTM=kerasdl_layers.LSTM
)


class TestKerasLSTM(keras_tests.LSTMTest):
    pass
