"""Mask helpers shared by the attention and Transformer layers.

Every mask here is boolean with `True` meaning "may attend". Padding masks
have shape `(batch, length)`; attention masks `(batch, query_length,
key_length)` or anything broadcastable to it.
"""

import numbers

from keras import ops

from kerasdl.layers.regularization.dropout import Dropout


def keras_mask_of(x):
    """Returns the Keras mask attached to `x` (e.g. by `Embedding(mask_zero=True)`).

    Keras 3 keeps it in the tensor attribute `_keras_mask` on every backend;
    this is the one place kerasdl reads it, so a future public accessor needs a
    one-line change.
    """
    return getattr(x, "_keras_mask", None)


def causal_mask(query_length, key_length, offset=0):
    """Lower-triangular `(1, query_length, key_length)` boolean mask.

    Query position `i` (shifted by `offset`, for a query that is the tail of a
    longer sequence) may attend to key positions `j <= i + offset`.
    """
    rows = ops.expand_dims(ops.arange(query_length, dtype="int32") + offset, -1)
    cols = ops.expand_dims(ops.arange(key_length, dtype="int32"), 0)
    return ops.expand_dims(ops.greater_equal(rows, cols), 0)


def merge_masks(
    query_length,
    key_length,
    query_mask=None,
    key_mask=None,
    attention_mask=None,
    use_causal_mask=False,
):
    """AND-combines padding, explicit and causal masks.

    Returns `None` when no mask applies, else a boolean tensor broadcastable
    to `(batch, query_length, key_length)`.
    """
    mask = None
    if query_mask is not None:
        mask = ops.expand_dims(ops.cast(query_mask, "bool"), -1)  # (B, T, 1)
    if key_mask is not None:
        km = ops.expand_dims(ops.cast(key_mask, "bool"), -2)  # (B, 1, S)
        mask = km if mask is None else ops.logical_and(mask, km)
    if attention_mask is not None:
        am = ops.cast(attention_mask, "bool")
        mask = am if mask is None else ops.logical_and(mask, am)
    if use_causal_mask:
        cm = causal_mask(query_length, key_length)
        mask = cm if mask is None else ops.logical_and(mask, cm)
    return mask


def dot_product_scores(equation, query, key):
    """`ops.einsum(equation, query, key)`, in float32 when the inputs are float16.

    Under `mixed_float16` a query-key product easily passes float16's largest
    value (65504) and the softmax then gives NaN; the product is computed from
    float32 copies instead. bfloat16 has float32's range and stays as it is.
    The result feeds `masked_softmax`, whose weights callers cast back to the
    value's dtype.
    """
    if query.dtype == "float16" or key.dtype == "float16":
        query = ops.cast(query, "float32")
        key = ops.cast(key, "float32")
    return ops.einsum(equation, query, key)


def masked_softmax(scores, mask=None, axis=-1):
    """Softmax over `axis` (an int or a tuple of axes) in float32; masked positions get 0.

    `scores` may be float16/bfloat16 (mixed precision); the softmax runs in
    float32 and the result is cast back to the dtype of `scores`. A row whose
    positions are all masked gets all-zero weights (as in Keras' `Softmax`),
    not a uniform average over padding.
    """
    dtype = scores.dtype
    scores = ops.cast(scores, "float32")
    if mask is not None:
        scores = ops.where(mask, scores, -1e9)
    if isinstance(axis, (tuple, list)) and len(axis) > 1:
        # One softmax over several axes jointly (attention over 2-D positions).
        axis = tuple(axis)
        exponentials = ops.exp(
            ops.subtract(scores, ops.max(scores, axis=axis, keepdims=True))
        )
        weights = ops.divide(
            exponentials, ops.sum(exponentials, axis=axis, keepdims=True)
        )
    else:
        if isinstance(axis, (tuple, list)):
            axis = axis[0]
        if scores.shape[axis] == 1:
            # A single key gets all the weight (ops.softmax warns about it).
            weights = ops.ones_like(scores)
        else:
            weights = ops.softmax(scores, axis=axis)
    if mask is not None:
        weights = ops.where(mask, weights, 0.0)
    return ops.cast(weights, dtype)


def _validate_rate(name, value):
    # Any real number, NumPy scalars included (Keras' layers take them).
    if not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(
            f"`{name}` must be a float in [0, 1). Received: {name}={value!r}"
        )
    return float(value)


def dropout_layer(rate, dtype, name, seed=None):
    """A named kerasdl `Dropout` sublayer in the parent's dtype policy."""
    return Dropout(rate, seed=seed, dtype=dtype, name=name)


def _padding_masks(query, value, key, query_mask, value_mask, key_mask):
    """Fills unset padding masks from the tensors' Keras masks.

    Keras fills `query_mask`/`value_mask`/`key_mask` itself when two or more
    tensors are passed; for a single tensor (self-attention, `layer(x)`) the
    query's mask is read here and also used for the keys.
    """
    if query_mask is None:
        query_mask = keras_mask_of(query)
    if value is None:
        if value_mask is None:
            value_mask = query_mask
    elif value_mask is None:
        value_mask = keras_mask_of(value)
    if key is not None and key_mask is None and key is not value:
        key_mask = keras_mask_of(key)
    return query_mask, value_mask, key_mask
