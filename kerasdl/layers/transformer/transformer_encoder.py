import keras
from keras import ops

from kerasdl.layers.attention._initializers import clone_initializer
from kerasdl.layers.attention._masking import dropout_layer, keras_mask_of
from kerasdl.layers.attention.multi_head_attention import MultiHeadAttention
from kerasdl.layers.transformer._sublayers import (
    check_hidden_dim,
    layer_normalization,
    validate_block_args,
)


@keras.saving.register_keras_serializable(package="kerasdl")
class TransformerEncoder(keras.layers.Layer):
    """One Transformer encoder block: self-attention and a feed-forward network.

    Each of the two sublayers is wrapped in "add & norm". By default
    (`normalize_first=False`) that is the post-norm block of the original
    paper, `x = LayerNorm(x + Dropout(Sublayer(x)))`:

    ```
    x = LayerNorm(x + Dropout(MultiHeadAttention(x, x)))
    x = LayerNorm(x + Dropout(Dense(d)(Dense(intermediate_dim, activation)(x))))
    ```

    With `normalize_first=True` it is the pre-norm block used by GPT-2 and most
    deep Transformers, `x = x + Dropout(Sublayer(LayerNorm(x)))`, which trains
    more stably without warm-up but needs a final `LayerNorm` after the stack.

    The output has the input's shape `(batch, length, d)`; `d` must be divisible
    by `num_heads` (each head has width `d // num_heads`). Padding positions
    (the input's Keras mask, or `padding_mask`) are never attended to, so
    changing a padded token does not change any unpadded output.

    Args:
        intermediate_dim: int, hidden width of the feed-forward network.
        num_heads: int, number of attention heads.
        dropout: float in `[0, 1)`, dropout after the attention and the
            feed-forward network (and on the attention weights). Defaults to `0.0`.
        activation: activation of the feed-forward hidden layer. Defaults to
            `"relu"`.
        layer_norm_epsilon: float, epsilon of the layer normalizations.
            Defaults to `1e-5`.
        kernel_initializer: initializer of the dense kernels (each kernel
            gets its own copy). Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the biases. Defaults to `"zeros"`.
        normalize_first: bool, pre-norm instead of post-norm. Defaults to `False`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `(batch, length, d)`.
        padding_mask: optional boolean `(batch, length)`, `True` for real tokens.
            Defaults to the input's Keras mask.
        attention_mask: optional boolean `(batch, length, length)`, or per
            head `(batch, num_heads, length, length)`.
        training: bool, whether dropout is active.
        return_attention_scores: bool, also return the self-attention weights
            `(batch, num_heads, length, length)`, as `(outputs, scores)`.
            Defaults to `False`.

    Reference:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762), section 3.1.
        - [Xiong et al., 2020](https://arxiv.org/abs/2002.04745) (pre-norm).

    Example:

    ```python
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(1000, 64, mask_zero=True)(tokens)
    x = x + kerasdl.layers.SinePositionEncoding()(x)
    x = kerasdl.layers.TransformerEncoder(intermediate_dim=128, num_heads=4)(x)
    ```
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

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        check_hidden_dim(hidden_dim, self.num_heads)

        # Self-attention block.
        self.self_attention = MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=hidden_dim // self.num_heads,
            dropout=self.dropout,
            **self._dense_kwargs("self_attention"),
        )
        self.self_attention.build(inputs_shape, inputs_shape)
        self.self_attention_norm = layer_normalization(
            self.layer_norm_epsilon, self.dtype_policy, "self_attention_norm"
        )
        self.self_attention_norm.build(inputs_shape)
        self.self_attention_dropout = dropout_layer(
            self.dropout, self.dtype_policy, "self_attention_dropout"
        )

        # Feed-forward block.
        self.feedforward_intermediate = keras.layers.Dense(
            self.intermediate_dim,
            activation=self.activation,
            **self._dense_kwargs("feedforward_intermediate"),
        )
        self.feedforward_intermediate.build(inputs_shape)
        self.feedforward_output = keras.layers.Dense(
            hidden_dim, **self._dense_kwargs("feedforward_output")
        )
        self.feedforward_output.build(
            tuple(inputs_shape[:-1]) + (self.intermediate_dim,)
        )
        self.feedforward_norm = layer_normalization(
            self.layer_norm_epsilon, self.dtype_policy, "feedforward_norm"
        )
        self.feedforward_norm.build(inputs_shape)
        self.feedforward_dropout = dropout_layer(
            self.dropout, self.dtype_policy, "feedforward_dropout"
        )

    def call(
        self,
        inputs,
        padding_mask=None,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        if padding_mask is None:
            padding_mask = keras_mask_of(inputs)
        x = inputs  # (batch, length, d)

        # Self-attention block.
        residual = x
        if self.normalize_first:
            x = self.self_attention_norm(x)
        x = self.self_attention(
            x,
            x,
            query_mask=padding_mask,
            value_mask=padding_mask,
            attention_mask=attention_mask,
            training=training,
            return_attention_scores=return_attention_scores,
        )
        if return_attention_scores:
            x, scores = x  # (batch, heads, length, length)
        x = ops.add(residual, self.self_attention_dropout(x, training=training))
        if not self.normalize_first:
            x = self.self_attention_norm(x)

        # Feed-forward block.
        residual = x
        if self.normalize_first:
            x = self.feedforward_norm(x)
        x = self.feedforward_output(self.feedforward_intermediate(x))
        x = ops.add(residual, self.feedforward_dropout(x, training=training))
        if not self.normalize_first:
            x = self.feedforward_norm(x)
        if return_attention_scores:
            return x, scores
        return x

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def compute_output_spec(self, inputs, return_attention_scores=False, **kwargs):
        output = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return output
        batch, length = inputs.shape[0], inputs.shape[1]
        scores = keras.KerasTensor(
            (batch, self.num_heads, length, length), dtype=self.compute_dtype
        )
        return output, scores

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
