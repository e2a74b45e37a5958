import math

import keras
from keras import ops

from kerasdl.layers.attention._masking import (
    _padding_masks,
    _validate_rate,
    dot_product_scores,
    dropout_layer,
    masked_softmax,
    merge_masks,
)


def scaled_dot_product_attention(
    query, key, value, mask=None, scale=None, dropout=None, training=None
):
    """Functional scaled dot-product attention.

    Computes `softmax(q k^T * scale) v` with `scale = 1 / sqrt(d_k)` by
    default. Works on `(batch, length, dim)` tensors or on head-split
    `(batch, length, num_heads, dim)` tensors (the layout of
    `MultiHeadAttention`'s projections). The softmax runs in float32.

    Args:
        query: `(B, T, d_k)` or `(B, T, N, d_k)`.
        key: `(B, S, d_k)` or `(B, S, N, d_k)`.
        value: `(B, S, d_v)` or `(B, S, N, d_v)`.
        mask: optional boolean mask broadcastable to `(B, T, S)`; `True` means
            "may attend". Defaults to `None`.
        scale: float multiplying the scores. Defaults to `1 / sqrt(d_k)`.
        dropout: optional callable `dropout(weights, training=...)` applied to
            the attention weights. Defaults to `None`.
        training: passed to `dropout`.

    Returns:
        `(output, weights)`: output `(B, T, d_v)` or `(B, T, N, d_v)`, and the
        attention weights before dropout, `(B, T, S)` or `(B, N, T, S)`.
    """
    rank = len(query.shape)
    if rank not in (3, 4):
        raise ValueError(
            "`query` must have rank 3 `(batch, length, dim)` or rank 4 "
            f"`(batch, length, heads, dim)`. Received: query.shape={query.shape}"
        )
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    # Scale the query before the product (smaller numbers in float16).
    query = ops.multiply(query, ops.cast(scale, query.dtype))
    if rank == 3:
        scores = dot_product_scores("btd,bsd->bts", query, key)  # (B, T, S)
    else:
        scores = dot_product_scores("btnd,bsnd->bnts", query, key)  # (B, N, T, S)
        if mask is not None:
            mask = ops.expand_dims(mask, -3)  # (B, 1, T, S)
    weights = ops.cast(masked_softmax(scores, mask), value.dtype)
    dropped = weights if dropout is None else dropout(weights, training=training)
    if rank == 3:
        output = ops.einsum("bts,bsd->btd", dropped, value)
    else:
        output = ops.einsum("bnts,bsnd->btnd", dropped, value)
    return output, weights


@keras.saving.register_keras_serializable(package="kerasdl")
class ScaledDotProductAttention(keras.layers.Layer):
    """Scaled dot-product attention, with padding, explicit and causal masks.

    For queries `q`, keys `k` and values `v` the layer returns
    `softmax(q k^T / sqrt(d_k)) v`: every query position takes a weighted
    average of the values, weighted by how well its query matches each key.
    Key and query must have the same width `d_k`; values may be wider or
    narrower. The layer has no weights (the projections are what
    `MultiHeadAttention` adds).

    Masks: a key position is ignored when the Keras mask of `value` or `key`
    (e.g. from `Embedding(mask_zero=True)`) is `False` there, when
    `attention_mask[b, i, j]` is `False`, or, with `use_causal_mask=True`, when
    `j > i`. All given masks are combined with AND. A query row whose keys are
    all masked gets zero weights (and a zero output). The output carries the
    query's Keras mask. The softmax is computed in float32, also under
    `mixed_float16`/`mixed_bfloat16`.

    Args:
        dropout: float in `[0, 1)`, dropout rate on the attention weights
            during training. Defaults to `0.0`.
        scale: optional float replacing `1 / sqrt(d_k)`. Defaults to `None`.
        seed: optional int seed for the dropout. Defaults to `None`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        query: `(batch, query_length, d_k)`.
        value: `(batch, key_length, d_v)`. Defaults to `query`
            (self-attention).
        key: optional `(batch, key_length, d_k)`. Defaults to `value`.
        query_mask, value_mask, key_mask: optional boolean `(batch, length)`
            padding masks; filled in from the inputs' Keras masks.
        attention_mask: optional boolean, broadcastable to
            `(batch, query_length, key_length)`.
        use_causal_mask: bool, mask every key after the query's position.
            Defaults to `False`.
        return_attention_scores: bool, also return the attention weights
            `(batch, query_length, key_length)`. Defaults to `False`.
        training: bool, whether dropout is active.

    Reference:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762), section 3.2.1.

    Example:

    ```python
    q = np.random.rand(2, 3, 8).astype("float32")
    kv = np.random.rand(2, 5, 8).astype("float32")
    output, weights = kerasdl.layers.ScaledDotProductAttention()(
        q, kv, return_attention_scores=True
    )  # (2, 3, 8), (2, 3, 5)
    ```
    """

    def __init__(self, dropout=0.0, scale=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.dropout = _validate_rate("dropout", dropout)
        if scale is not None and not isinstance(scale, (int, float)):
            raise ValueError(
                f"`scale` must be a number or None. Received: scale={scale!r}"
            )
        self.scale = None if scale is None else float(scale)
        self.seed = seed
        self.supports_masking = True
        self.dropout_layer = dropout_layer(
            self.dropout, self.dtype_policy, "attention_dropout", seed=seed
        )

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        if None not in (query_shape[-1], key_shape[-1]) and (
            query_shape[-1] != key_shape[-1]
        ):
            raise ValueError(
                "`query` and `key` must have the same last dimension. "
                f"Received: query_shape={query_shape}, key_shape={key_shape}"
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
        mask = merge_masks(
            ops.shape(query)[1],
            ops.shape(key)[1],
            query_mask=query_mask,
            key_mask=key_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
        )
        output, weights = scaled_dot_product_attention(
            query,
            key,
            value,
            mask=mask,
            scale=self.scale,
            dropout=self.dropout_layer if self.dropout > 0 else None,
            training=training,
        )
        if return_attention_scores:
            return output, weights
        return output

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
                (query.shape[0], query.shape[1], value.shape[1]),
                dtype=self.compute_dtype,
            )
            return output, scores
        return output

    def get_config(self):
        config = super().get_config()
        config.update({"dropout": self.dropout, "scale": self.scale, "seed": self.seed})
        return config
