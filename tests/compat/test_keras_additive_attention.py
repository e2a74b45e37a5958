"""Keras' own `additive_attention_test.py`, run with kerasdl's `AdditiveAttention`."""

from _swap import keras_test_module

from kerasdl import layers as kerasdl_layers

keras_tests = keras_test_module(
    "layers.attention.additive_attention_test",
    "layers",
    AdditiveAttention=kerasdl_layers.AdditiveAttention,
)


class TestKerasAdditiveAttention(keras_tests.AdditiveAttentionTest):
    pass
