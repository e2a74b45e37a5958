import keras
from keras import ops

from kerasdl.layers.attention._masking import (
    _padding_masks,
    _validate_rate,
    dropout_layer,
    masked_softmax,
    merge_masks,
)


@keras.saving.register_keras_serializable(package="kerasdl")
class AdditiveAttention(keras.layers.Layer):
    """Bahdanau (additive, "MLP") attention with learned projections.

    The score of query `q` against key `k` is a one-hidden-layer perceptron,
    `score(q, k) = v^T tanh(W_q q + W_k k)`, with learned `W_q` (`query_dim x
    units`), `W_k` (`key_dim x units`) and `v` (`units`). The weights are
    `softmax` of the scores over the keys, and the output (the context vector)
    is the weighted sum of the values. Because query and key are projected
    separately they may have different widths, e.g. a decoder RNN state of
    size 256 attending over bidirectional encoder states of size 512.

    This differs from `keras.layers.AdditiveAttention`, which has no `W_q`/`W_k`
    and requires equal widths (tensorflow/tensorflow#39332).

    The query may be a single step `(batch, query_dim)` (an RNN decoder asking
    once per step) or a sequence `(batch, query_length, query_dim)`. Masks are
    handled as in `ScaledDotProductAttention`; the softmax runs in float32.

    Args:
        units: int, width of the hidden layer (of `W_q q + W_k k`).
        use_bias: bool, whether to add a learned bias `b` inside the `tanh`
            (`v^T tanh(W_q q + W_k k + b)`). Defaults to `False`, the formula above.
        dropout: float in `[0, 1)`, dropout rate on the attention weights.
            Defaults to `0.0`.
        kernel_initializer: initializer of `W_q`, `W_k` and `v`. Defaults to
            `"glorot_uniform"`.
        kernel_regularizer: optional regularizer of `W_q`, `W_k` and `v`.
            Defaults to `None`.
        seed: optional int seed for the dropout. Defaults to `None`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        query: `(batch, query_dim)` or `(batch, query_length, query_dim)`.
        value: `(batch, key_length, value_dim)`. Defaults to `query` (which
            must then be rank 3).
        key: `(batch, key_length, key_dim)`. Defaults to `value`.
        query_mask, value_mask, key_mask: optional boolean padding masks,
            filled in from the inputs' Keras masks.
        attention_mask: optional boolean mask broadcastable to
            `(batch, query_length, key_length)` (`(batch, key_length)` for a
            rank-2 query).
        use_causal_mask: bool, for rank-3 queries forbid attending to later
            positions. Defaults to `False`.
        return_attention_scores: bool, also return the attention weights
            `(batch, key_length)` or `(batch, query_length, key_length)`.
            Defaults to `False`.
        training: bool, whether dropout is active.

    Reference:
        - [Bahdanau et al., 2015](https://arxiv.org/abs/1409.0473), appendix A.1.2.

    Example:

    ```python
    attention = kerasdl.layers.AdditiveAttention(units=32)
    state = np.random.rand(4, 64).astype("float32")          # decoder state
    encoder = np.random.rand(4, 9, 128).astype("float32")    # encoder outputs
    context, weights = attention(state, encoder, return_attention_scores=True)
    # context (4, 128), weights (4, 9)
    ```
    """

    def __init__(
        self,
        units,
        use_bias=False,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(
                f"`units` must be a positive int. Received: units={units!r}"
            )
        self.units = units
        self.use_bias = bool(use_bias)
        self.dropout = _validate_rate("dropout", dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed
        self.supports_masking = True
        self.dropout_layer = dropout_layer(
            self.dropout, self.dtype_policy, "attention_dropout", seed=seed
        )

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        if len(query_shape) not in (2, 3) or len(key_shape) != 3:
            raise ValueError(
                "`query` must have rank 2 or 3 and `key`/`value` rank 3. "
                f"Received: query_shape={query_shape}, key_shape={key_shape}"
            )

        def weight(name, shape):
            return self.add_weight(
                name=name,
                shape=shape,
                initializer=self.kernel_initializer,
                regularizer=self.kernel_regularizer,
            )

        self.query_kernel = weight("query_kernel", (query_shape[-1], self.units))
        self.key_kernel = weight("key_kernel", (key_shape[-1], self.units))
        self.score_vector = weight("score_vector", (self.units,))
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.units,), initializer="zeros"
            )

    def call(
        self,
        query,
        value=None,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        training=None,
    ):
        query_mask, value_mask, key_mask = _padding_masks(
            query, value, key, query_mask, value_mask, key_mask
        )
        value = query if value is None else value
        key = value if key is None else key
        if key_mask is None:
            key_mask = value_mask
        elif value_mask is not None:
            key_mask = ops.logical_and(
                ops.cast(key_mask, "bool"), ops.cast(value_mask, "bool")
            )
        single_step = len(query.shape) == 2
        if single_step:
            query = ops.expand_dims(query, 1)  # (B, 1, dq)
            if query_mask is not None:
                query_mask = ops.expand_dims(query_mask, 1)
            if attention_mask is not None and len(attention_mask.shape) == 2:
                attention_mask = ops.expand_dims(attention_mask, 1)
        mask = merge_masks(
            ops.shape(query)[1],
            ops.shape(key)[1],
            query_mask=query_mask,
            key_mask=key_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask and not single_step,
        )

        # Scores v^T tanh(W_q q + W_k k): (B, T, 1, u) + (B, 1, S, u).
        projected_query = ops.expand_dims(ops.matmul(query, self.query_kernel), 2)
        projected_key = ops.expand_dims(ops.matmul(key, self.key_kernel), 1)
        hidden = ops.add(projected_query, projected_key)  # (B, T, S, u)
        if self.bias is not None:
            hidden = ops.add(hidden, self.bias)
        scores = ops.einsum("btsu,u->bts", ops.tanh(hidden), self.score_vector)

        # Weights and context vector.
        weights = masked_softmax(scores, mask)  # (B, T, S)
        dropped = weights
        if self.dropout > 0:
            dropped = self.dropout_layer(weights, training=training)
        context = ops.einsum("bts,bsd->btd", dropped, value)  # (B, T, dv)
        if single_step:
            context, weights = context[:, 0], weights[:, 0]
        if return_attention_scores:
            return context, weights
        return context

    def compute_mask(self, query, previous_mask=None):
        return previous_mask

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        return tuple(query_shape[:-1]) + (value_shape[-1],)

    def compute_output_spec(
        self, query, value=None, key=None, return_attention_scores=False, **kwargs
    ):
        value = query if value is None else value
        output = keras.KerasTensor(
            self.compute_output_shape(query.shape, value.shape),
            dtype=self.compute_dtype,
        )
        if return_attention_scores:
            scores = keras.KerasTensor(
                tuple(query.shape[:-1]) + (value.shape[1],), dtype=self.compute_dtype
            )
            return output, scores
        return output

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "use_bias": self.use_bias,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "seed": self.seed,
            }
        )
        return config
