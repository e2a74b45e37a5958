import keras
from keras import ops

from kerasdl.layers.attention._initializers import clone_initializer
from kerasdl.layers.attention._masking import (
    _padding_masks,
    _validate_rate,
    dropout_layer,
    keras_mask_of,
    masked_softmax,
    merge_masks,
)


@keras.saving.register_keras_serializable(package="kerasdl")
class AdditiveAttention(keras.layers.Layer):
    """Bahdanau (additive, "MLP") attention, also in `keras.layers.AdditiveAttention`'s form.

    The score of query `q` against key `k` is a one-hidden-layer perceptron,
    `score(q, k) = v^T tanh(W_q q + W_k k)`. The weights are `softmax` of the
    scores over the keys (computed in float32), and the output (the context
    vector) is the weighted sum of the values. The layer has two forms,
    chosen by `units`:

    * **Bahdanau form** (`units` an int): learned `W_q` (`query_dim x units`),
      `W_k` (`key_dim x units`) and `v` (`units`), as in Bahdanau et al.
      Because query and key are projected separately they may have different
      widths, e.g. a decoder RNN state of size 256 attending over
      bidirectional encoder states of size 512 (which
      `keras.layers.AdditiveAttention` cannot do, tensorflow/tensorflow#39332).
    * **Keras form** (`units=None`, the default): no projections, `W_q` and
      `W_k` are the identity, so query and key need the same width, and `v`
      is a learned `scale` vector (or all ones with `use_scale=False`):
      `keras.layers.AdditiveAttention` exactly, with the same weights.

    Either form takes either call convention:

    * kerasdl's: `layer(query, value, key, value_mask=..., ...)`, with masks
      as in `ScaledDotProductAttention`: padding masks, `attention_mask` and
      `use_causal_mask` are ANDed, and a query whose keys are all masked
      (including a masked query) gets all-zero weights. `layer(x)` is
      self-attention (Bahdanau form only).
    * Keras': `layer([query, value])` or `layer([query, value, key])`, with
      `mask=[query_mask, value_mask]`; as in Keras, a masked query gets a zero
      output but keeps its attention weights, and the output carries the
      query mask.

    The query may be a single step `(batch, query_dim)` (an RNN decoder asking
    once per step) or a sequence `(batch, query_length, query_dim)`.

    Args:
        units: int or `None`, width of the hidden layer `W_q q + W_k k`;
            `None` selects the Keras form. Defaults to `None`.
        use_bias: bool, whether to add a learned bias `b` inside the `tanh`
            (`v^T tanh(W_q q + W_k k + b)`). Defaults to `False`, the formula above.
        dropout: float in `[0, 1)`, dropout rate on the attention weights.
            Defaults to `0.0`.
        kernel_initializer: initializer of `W_q`, `W_k` and `v` (each gets its
            own copy). Defaults to `"glorot_uniform"`.
        kernel_regularizer: optional regularizer of `W_q`, `W_k` and `v`.
            Defaults to `None`.
        seed: optional int seed for the dropout. Defaults to `None`.
        use_scale: bool, whether `v` is learned; with `False` it is all ones
            (`score = sum(tanh(W_q q + W_k k))`). Defaults to `True`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        query: `(batch, query_dim)` or `(batch, query_length, query_dim)`, or
            the list `[query, value]` / `[query, value, key]` (Keras' convention).
        value: `(batch, key_length, value_dim)`. Defaults to `query`.
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
        mask: Keras' convention: the list `[query_mask, value_mask]`.

    Reference:
        - [Bahdanau et al., 2015](https://arxiv.org/abs/1409.0473), appendix A.1.2.

    Example:

    ```python
    attention = kerasdl.layers.AdditiveAttention(units=32)
    state = np.random.rand(4, 64).astype("float32")          # decoder state
    encoder = np.random.rand(4, 9, 128).astype("float32")    # encoder outputs
    context, weights = attention(state, encoder, return_attention_scores=True)
    # context (4, 128), weights (4, 9)

    # Keras' form and call convention:
    context = kerasdl.layers.AdditiveAttention()([encoder, encoder])  # (4, 9, 128)
    ```
    """

    def __init__(
        self,
        units=None,
        use_bias=False,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        seed=None,
        use_scale=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if units is not None and (
            not isinstance(units, int) or isinstance(units, bool) or units < 1
        ):
            raise ValueError(
                "`units` must be a positive int, or None for Keras' form (pass "
                "Keras' `use_scale` by keyword). "
                f"Received: units={units!r}"
            )
        self.units = units
        self.use_bias = bool(use_bias)
        self.dropout = _validate_rate("dropout", dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed
        self.use_scale = bool(use_scale)
        self.supports_masking = True
        self.dropout_layer = dropout_layer(
            self.dropout, self.dtype_policy, "attention_dropout", seed=seed
        )

    def build(self, query_shape, value_shape=None, key_shape=None):
        if _is_shape_list(query_shape):
            query_shape, value_shape, key_shape = _unpack(query_shape)
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
                initializer=clone_initializer(self.kernel_initializer, name),
                regularizer=self.kernel_regularizer,
            )

        self.query_kernel = self.key_kernel = self.score_vector = None
        if self.units is None:
            # Keras' form: identity projections, `v` is the `scale` vector.
            if query_shape[-1] != key_shape[-1]:
                raise ValueError(
                    "Without `units`, `query` and `key` must have the same last "
                    "dimension; pass `units` to project them. Received: "
                    f"query_shape={query_shape}, key_shape={key_shape}"
                )
            hidden_dim = query_shape[-1]
            if self.use_scale:
                self.score_vector = weight("scale", (hidden_dim,))
        else:
            hidden_dim = self.units
            self.query_kernel = weight("query_kernel", (query_shape[-1], hidden_dim))
            self.key_kernel = weight("key_kernel", (key_shape[-1], hidden_dim))
            if self.use_scale:
                self.score_vector = weight("score_vector", (hidden_dim,))
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(hidden_dim,), initializer="zeros"
            )

    def _keras_convention(self, inputs, mask):
        """Unpacks `[query, value(, key)]` and `mask=[query_mask, value_mask]`."""
        if len(inputs) not in (2, 3):
            raise ValueError(
                "AdditiveAttention layer accepts inputs list of length 2 or 3, "
                "namely [query, value] or [query, value, key]. "
                f"Received length: {len(inputs)}."
            )
        if mask is None:
            mask = [keras_mask_of(tensor) for tensor in inputs]
        elif not isinstance(mask, (list, tuple)):
            raise ValueError(
                "AdditiveAttention layer mask must be a list, namely "
                f"[query_mask, value_mask]. Received: mask={mask}."
            )
        elif len(mask) not in (2, 3):
            raise ValueError(
                "AdditiveAttention layer accepts mask list of length 2 or 3. "
                f"Received: mask of length {len(mask)}."
            )
        query, value = inputs[0], inputs[1]
        key = inputs[2] if len(inputs) == 3 else None
        return query, value, key, mask[0], mask[1]

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
        mask=None,
    ):
        keras_convention = isinstance(query, (list, tuple))
        output_query_mask = None
        if keras_convention:
            query, value, key, output_query_mask, value_mask = self._keras_convention(
                query, mask
            )
            query_mask = None  # Keras masks the output rows, not the weights.
        else:
            if self.units is None and value is None:
                raise ValueError(
                    "AdditiveAttention layer without `units` must be called on a "
                    "list of inputs, namely [query, value] or [query, value, "
                    "key] (or on `query, value` separately). Received: inputs="
                    f"one tensor of shape {getattr(query, 'shape', None)}."
                )
            if mask is not None and query_mask is None:
                query_mask = mask
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
        score_mask = merge_masks(
            ops.shape(query)[1],
            ops.shape(key)[1],
            query_mask=query_mask,
            key_mask=key_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask and not single_step,
        )

        # Scores v^T tanh(W_q q + W_k k): (B, T, 1, u) + (B, 1, S, u).
        projected_query, projected_key = query, key
        if self.units is not None:
            projected_query = ops.matmul(query, self.query_kernel)
            projected_key = ops.matmul(key, self.key_kernel)
        hidden = ops.add(
            ops.expand_dims(projected_query, 2), ops.expand_dims(projected_key, 1)
        )  # (B, T, S, u)
        if self.bias is not None:
            hidden = ops.add(hidden, self.bias)
        if self.score_vector is None:
            scores = ops.sum(ops.tanh(hidden), axis=-1)
        else:
            scores = ops.einsum("btsu,u->bts", ops.tanh(hidden), self.score_vector)

        # Weights and context vector.
        weights = masked_softmax(scores, score_mask)  # (B, T, S)
        dropped = weights
        if self.dropout > 0:
            dropped = self.dropout_layer(weights, training=training)
        context = ops.einsum("bts,bsd->btd", dropped, value)  # (B, T, dv)
        if output_query_mask is not None:
            if single_step:
                output_query_mask = ops.expand_dims(output_query_mask, 1)
            row_mask = ops.expand_dims(ops.cast(output_query_mask, "bool"), -1)
            context = ops.where(row_mask, context, ops.zeros_like(context))
        if single_step:
            context, weights = context[:, 0], weights[:, 0]
        if return_attention_scores:
            return context, weights
        return context

    def compute_mask(self, query, previous_mask=None):
        if isinstance(previous_mask, (list, tuple)):
            return previous_mask[0] if previous_mask else None
        return previous_mask

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        if _is_shape_list(query_shape):
            query_shape, value_shape, _ = _unpack(query_shape)
        value_shape = query_shape if value_shape is None else value_shape
        return tuple(query_shape[:-1]) + (value_shape[-1],)

    def compute_output_spec(
        self, query, value=None, key=None, return_attention_scores=False, **kwargs
    ):
        if isinstance(query, (list, tuple)):
            query, value, _, _, _ = self._keras_convention(query, kwargs.get("mask"))
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
                "use_scale": self.use_scale,
            }
        )
        return config


def _is_shape_list(shape):
    """Whether `shape` is a list of shapes (Keras' `[query, value(, key)]`)."""
    return (
        isinstance(shape, (list, tuple))
        and len(shape) > 0
        and isinstance(shape[0], (list, tuple))
    )


def _unpack(shapes):
    if len(shapes) not in (2, 3):
        raise ValueError(
            "AdditiveAttention layer accepts inputs list of length 2 or 3, "
            "namely [query, value] or [query, value, key]. "
            f"Received length: {len(shapes)}."
        )
    return shapes[0], shapes[1], shapes[2] if len(shapes) == 3 else None
