import keras
from keras import ops

from kerasdl.layers.attention._masking import (
    _padding_masks,
    _validate_rate,
    dropout_layer,
    merge_masks,
)
from kerasdl.layers.attention.scaled_dot_product_attention import (
    scaled_dot_product_attention,
)


@keras.saving.register_keras_serializable(package="kerasdl")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention: `num_heads` scaled dot-product attentions in parallel.

    Each head `i` projects the inputs with its own matrices,
    `q_i = query W_q^i`, `k_i = key W_k^i`, `v_i = value W_v^i` (widths
    `key_dim`, `key_dim`, `value_dim`), runs scaled dot-product attention
    `softmax(q_i k_i^T / sqrt(key_dim)) v_i`, and the `num_heads` outputs are
    concatenated and mixed by an output projection `W_o` back to the query's
    width (or to `output_shape`). With `value` omitted or equal to `query` it
    is self-attention; with a different `value` (e.g. an encoder's output) it
    is cross-attention.

    The call signature and the weight layout follow
    `keras.layers.MultiHeadAttention` (rank-3 inputs), so the layer is a
    drop-in replacement: `layer.set_weights(keras_mha.get_weights())` gives
    the same outputs. Masks are handled as in `ScaledDotProductAttention`
    (Keras padding masks of query/value/key, `attention_mask`,
    `use_causal_mask`, all combined with AND); the softmax runs in float32.

    Args:
        num_heads: int, number of attention heads.
        key_dim: int, width of each head's query and key projection.
        value_dim: int, width of each head's value projection. Defaults to
            `None`, meaning `key_dim`.
        dropout: float in `[0, 1)`, dropout rate on the attention weights.
            Defaults to `0.0`.
        use_bias: bool, whether the projections have biases. Defaults to `True`.
        output_shape: int (or a tuple of one int), width of the output.
            Defaults to `None`, the query's last dimension.
        kernel_initializer: initializer of the projection kernels. Defaults to
            `"glorot_uniform"`.
        bias_initializer: initializer of the biases. Defaults to `"zeros"`.
        kernel_regularizer: optional regularizer of the kernels. Defaults to
            `None`.
        bias_regularizer: optional regularizer of the biases. Defaults to `None`.
        kernel_constraint: optional constraint of the kernels. Defaults to `None`.
        bias_constraint: optional constraint of the biases. Defaults to `None`.
        seed: optional int seed for the dropout. Defaults to `None`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        query: `(batch, query_length, query_dim)`.
        value: `(batch, key_length, value_dim_in)`. Defaults to `query`.
        key: `(batch, key_length, key_dim_in)`. Defaults to `value`.
        query_mask, value_mask, key_mask: optional boolean padding masks
            `(batch, length)`, filled in from the inputs' Keras masks.
        attention_mask: optional boolean mask broadcastable to
            `(batch, query_length, key_length)`; `True` means "may attend".
        return_attention_scores: bool, also return the attention weights
            `(batch, num_heads, query_length, key_length)`. Defaults to `False`.
        training: bool, whether dropout is active.
        use_causal_mask: bool, forbid attending to later positions. Defaults
            to `False`.

    Reference:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762), section 3.2.2.

    Example:

    ```python
    mha = kerasdl.layers.MultiHeadAttention(num_heads=4, key_dim=16)
    x = np.random.rand(2, 10, 64).astype("float32")
    y = mha(x, x, use_causal_mask=True)  # (2, 10, 64)
    ```
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("num_heads", num_heads), ("key_dim", key_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`{name}` must be a positive int. Received: {name}={value!r}"
                )
        if value_dim is not None and (not isinstance(value_dim, int) or value_dim < 1):
            raise ValueError(
                f"`value_dim` must be a positive int or None. Received: value_dim={value_dim!r}"
            )
        if isinstance(output_shape, (tuple, list)):
            if len(output_shape) != 1:
                raise ValueError(
                    "`output_shape` must be an int or a tuple of one int. "
                    f"Received: output_shape={output_shape!r}"
                )
            output_shape = output_shape[0]
        if output_shape is not None and (
            not isinstance(output_shape, int) or output_shape < 1
        ):
            raise ValueError(
                "`output_shape` must be a positive int. "
                f"Received: output_shape={output_shape!r}"
            )
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = key_dim if value_dim is None else value_dim
        self.dropout = _validate_rate("dropout", dropout)
        self.use_bias = bool(use_bias)
        self.output_shape_ = output_shape
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.seed = seed
        self.supports_masking = True
        self.dropout_layer = dropout_layer(
            self.dropout, self.dtype_policy, "attention_dropout", seed=seed
        )

    def _projection(self, name, kernel_shape, bias_shape):
        kernel = self.add_weight(
            name=f"{name}_kernel",
            shape=kernel_shape,
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        bias = None
        if self.use_bias:
            bias = self.add_weight(
                name=f"{name}_bias",
                shape=bias_shape,
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        return kernel, bias

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        for name, shape in (
            ("query", query_shape),
            ("value", value_shape),
            ("key", key_shape),
        ):
            if len(shape) != 3 or shape[-1] is None:
                raise ValueError(
                    f"`{name}` must have shape (batch, length, features) with a "
                    f"known feature size. Received: {name}.shape={shape}"
                )
        heads = self.num_heads
        # Same weight order and shapes as keras.layers.MultiHeadAttention.
        self.query_kernel, self.query_bias = self._projection(
            "query", (query_shape[-1], heads, self.key_dim), (heads, self.key_dim)
        )
        self.key_kernel, self.key_bias = self._projection(
            "key", (key_shape[-1], heads, self.key_dim), (heads, self.key_dim)
        )
        self.value_kernel, self.value_bias = self._projection(
            "value", (value_shape[-1], heads, self.value_dim), (heads, self.value_dim)
        )
        output_dim = self.output_shape_ or query_shape[-1]
        self.output_kernel, self.output_bias = self._projection(
            "attention_output", (heads, self.value_dim, output_dim), (output_dim,)
        )

    def _project(self, x, kernel, bias):
        y = ops.einsum("btd,dnh->btnh", x, kernel)  # (B, T, heads, dim)
        return y if bias is None else ops.add(y, bias)

    def call(
        self,
        query,
        value=None,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
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
        mask = merge_masks(
            ops.shape(query)[1],
            ops.shape(key)[1],
            query_mask=query_mask,
            key_mask=key_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
        )

        # Per-head projections.
        q = self._project(query, self.query_kernel, self.query_bias)  # (B, T, N, dk)
        k = self._project(key, self.key_kernel, self.key_bias)  # (B, S, N, dk)
        v = self._project(value, self.value_kernel, self.value_bias)  # (B, S, N, dv)

        # Attention in every head.
        context, weights = scaled_dot_product_attention(
            q,
            k,
            v,
            mask=mask,
            dropout=self.dropout_layer if self.dropout > 0 else None,
            training=training,
        )  # (B, T, N, dv), (B, N, T, S)

        # Concatenate the heads and project: one einsum over (heads, dv).
        output = ops.einsum("btnh,nho->bto", context, self.output_kernel)
        if self.output_bias is not None:
            output = ops.add(output, self.output_bias)
        if return_attention_scores:
            return output, weights
        return output

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        return tuple(query_shape[:-1]) + (self.output_shape_ or query_shape[-1],)

    def compute_output_spec(
        self, query, value=None, key=None, return_attention_scores=False, **kwargs
    ):
        value = query if value is None else value
        output = keras.KerasTensor(
            self.compute_output_shape(query.shape), dtype=self.compute_dtype
        )
        if return_attention_scores:
            scores = keras.KerasTensor(
                (query.shape[0], self.num_heads, query.shape[1], value.shape[1]),
                dtype=self.compute_dtype,
            )
            return output, scores
        return output

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "value_dim": self.value_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "output_shape": self.output_shape_,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(
                    self.kernel_constraint
                ),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "seed": self.seed,
            }
        )
        return config
