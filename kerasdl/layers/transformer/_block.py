"""What the Transformer encoder and decoder blocks share: arguments, sublayers, config."""

import keras
from keras import ops

from kerasdl.layers.attention._initializers import clone_initializer
from kerasdl.layers.attention._masking import dropout_layer
from kerasdl.layers.attention.multi_head_attention import MultiHeadAttention
from kerasdl.layers.transformer._sublayers import (
    layer_normalization,
    validate_block_args,
)


class TransformerBlock(keras.layers.Layer):
    """Base of `TransformerEncoder` and `TransformerDecoder` (not used on its own).

    Holds the constructor arguments both blocks take (see their docstrings), builds
    their named sublayers (attention, "add & norm", the feed-forward network) and
    runs a sublayer inside its residual "add & norm", post-norm or pre-norm.
    """

    def __init__(
        self,
        intermediate_dim,
        num_heads,
        dropout=0.0,
        activation="relu",
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        normalize_first=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        validate_block_args(intermediate_dim, num_heads, dropout, layer_norm_epsilon)
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.dropout = float(dropout)
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.normalize_first = bool(normalize_first)
        self.supports_masking = True

    def _dense_kwargs(self, name):
        """Sublayer arguments, with initializer copies of the sublayer's own."""
        return {
            "kernel_initializer": clone_initializer(self.kernel_initializer, name),
            "bias_initializer": clone_initializer(
                self.bias_initializer, f"{name}_bias"
            ),
            "dtype": self.dtype_policy,
            "name": name,
        }

    def _norm(self, name, shape):
        norm = layer_normalization(self.layer_norm_epsilon, self.dtype_policy, name)
        norm.build(shape)
        return norm

    def _build_attention(self, name, query_shape, value_shape):
        """Sets `<name>`, `<name>_norm` and `<name>_dropout`, built."""
        attention = MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=query_shape[-1] // self.num_heads,
            dropout=self.dropout,
            **self._dense_kwargs(name),
        )
        attention.build(query_shape, value_shape)
        setattr(self, name, attention)
        setattr(self, f"{name}_norm", self._norm(f"{name}_norm", query_shape))
        setattr(
            self,
            f"{name}_dropout",
            dropout_layer(self.dropout, self.dtype_policy, f"{name}_dropout"),
        )

    def _build_feedforward(self, inputs_shape):
        """Sets the feed-forward sublayers, built: Dense(intermediate) -> Dense(d)."""
        self.feedforward_intermediate = keras.layers.Dense(
            self.intermediate_dim,
            activation=self.activation,
            **self._dense_kwargs("feedforward_intermediate"),
        )
        self.feedforward_intermediate.build(inputs_shape)
        self.feedforward_output = keras.layers.Dense(
            inputs_shape[-1], **self._dense_kwargs("feedforward_output")
        )
        self.feedforward_output.build(
            tuple(inputs_shape[:-1]) + (self.intermediate_dim,)
        )
        self.feedforward_norm = self._norm("feedforward_norm", inputs_shape)
        self.feedforward_dropout = dropout_layer(
            self.dropout, self.dtype_policy, "feedforward_dropout"
        )

    def _add_and_norm(self, sublayer, norm, dropout, x, training):
        """Residual "add & norm" around `sublayer`, post-norm or pre-norm.

        `sublayer` returns `(output, attention_scores)`; so does this method.
        """
        h = norm(x) if self.normalize_first else x
        h, scores = sublayer(h)
        x = ops.add(x, dropout(h, training=training))
        if not self.normalize_first:
            x = norm(x)
        return x, scores

    def _feedforward_block(self, x, training):
        """The feed-forward network inside its "add & norm"."""
        x, _ = self._add_and_norm(
            lambda h: (self.feedforward_output(self.feedforward_intermediate(h)), None),
            self.feedforward_norm,
            self.feedforward_dropout,
            x,
            training,
        )
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "num_heads": self.num_heads,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "normalize_first": self.normalize_first,
            }
        )
        return config
