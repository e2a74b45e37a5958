"""Keras' own `multi_head_attention_test.py`, run with kerasdl's `MultiHeadAttention`."""

from _swap import keras_test_module

from kerasdl import layers as kerasdl_layers

keras_tests = keras_test_module(
    "layers.attention.multi_head_attention_test",
    "layers",
    MultiHeadAttention=kerasdl_layers.MultiHeadAttention,
)


class TestKerasMultiHeadAttention(keras_tests.MultiHeadAttentionTest):
    pass
