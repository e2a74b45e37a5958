import math
import string

import keras
from keras import ops

from kerasdl.layers.attention._initializers import clone_initializer
from kerasdl.layers.attention._masking import (
    _padding_masks,
    _validate_rate,
    causal_mask,
    dot_product_scores,
    dropout_layer,
    masked_softmax,
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

    A drop-in replacement for `keras.layers.MultiHeadAttention`: the same
    arguments, call signature, overridable methods (`_compute_attention`,
    `_masked_softmax`, `_compute_attention_mask`, `_compute_causal_mask`) and
    weights. The projections are `keras.layers.EinsumDense` sublayers
    (`query_dense`, `key_dense`, `value_dense`, `output_dense` and, with
    `use_gate`, a sigmoid `gate` projection), so `quantize("int8")`,
    `DTypePolicyMap` and `enable_lora` work on them, and
    `layer.set_weights(keras_mha.get_weights())` gives the same outputs.
    Every projection gets its own copy of `kernel_initializer`, so the query,
    key and value kernels never start equal.

    Differences from Keras, all in the attention weights: the softmax runs in
    float32 (also under `mixed_float16`/`mixed_bfloat16`), and under
    `mixed_float16` so does the query-key product, which would otherwise pass
    float16's range on large activations and give NaN; a query whose keys
    are all masked gets all-zero weights and a zero context vector (Keras
    averages uniformly over the masked keys); padding masks, `attention_mask`,
    `use_causal_mask` and `sliding_window` are always combined with AND, also
    with a per-head `attention_mask` `(batch, num_heads, T, S)`.

    Inputs may have rank > 3, e.g. images `(batch, height, width, channels)`:
    attention then runs over `attention_axes` (jointly over all of them), and
    the other axes between the batch and the features are batch-like.

    Args:
        num_heads: int, number of attention heads.
        key_dim: int, width of each head's query and key projection.
        value_dim: int, width of each head's value projection. Defaults to
            `None`, meaning `key_dim`.
        dropout: float in `[0, 1)`, dropout rate on the attention weights.
            Defaults to `0.0`.
        use_bias: bool, whether the projections have biases. Defaults to `True`.
        output_shape: int or tuple of ints, the shape of the output's trailing
            dimensions. Defaults to `None`, the query's last dimension.
        attention_axes: int or tuple of ints, the input axes attention runs
            over (negative values count from the end, the feature axis being
            `-1`). Defaults to `None`: every axis between the batch axis and
            the feature axis.
        sliding_window: optional positive int `w`: position `i` may only
            attend to positions `j` with `|i - j| < w` (with
            `use_causal_mask=True`, to the `w` latest positions). Defaults to
            `None`.
        flash_attention: bool or `None`. `True` computes the attention with
            the backend's fused kernel (`keras.ops.dot_product_attention`),
            which then cannot return attention scores nor use dropout, and
            has the backend's softmax. Defaults to `None`: the
            `keras.config.is_flash_attention_enabled()` setting if that is
            `True`, else kerasdl's float32 computation.
        kernel_initializer: initializer of the projection kernels (copied
            for each projection). Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the biases. Defaults to `"zeros"`.
        kernel_regularizer: optional regularizer of the kernels. Defaults to
            `None`.
        bias_regularizer: optional regularizer of the biases. Defaults to `None`.
        activity_regularizer: optional regularizer of the projections'
            outputs. Defaults to `None`.
        kernel_constraint: optional constraint of the kernels. Defaults to `None`.
        bias_constraint: optional constraint of the biases. Defaults to `None`.
        use_gate: bool, multiply each head's context by a learned sigmoid gate
            of the query, `sigmoid(query W_g)`, before the output projection.
            Defaults to `False`.
        seed: optional int seed for the dropout. Defaults to `None`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        query: `(batch, query_length, query_dim)` (or `(batch, ..., query_dim)`).
        value: `(batch, key_length, value_dim_in)`. Defaults to `query`.
        key: `(batch, key_length, key_dim_in)`. Defaults to `value`.
        query_mask, value_mask, key_mask: optional boolean padding masks
            `(batch, length)`, filled in from the inputs' Keras masks.
        attention_mask: optional boolean mask broadcastable to
            `(batch, query_length, key_length)` or per head to
            `(batch, num_heads, query_length, key_length)`; `True` means
            "may attend".
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
        attention_axes=None,
        sliding_window=None,
        flash_attention=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        use_gate=False,
        seed=None,
        **kwargs,
    ):
        for name, value in (("num_heads", num_heads), ("key_dim", key_dim)):
            if not _is_positive_int(value):
                raise ValueError(
                    f"Received an invalid value for argument `{name}`: expected "
                    f"a positive int. Received: {name}={value!r}"
                )
        if value_dim is not None and not _is_positive_int(value_dim):
            raise ValueError(
                "Received an invalid value for argument `value_dim`: expected a "
                f"positive int or None. Received: value_dim={value_dim!r}"
            )
        super().__init__(**kwargs)
        self._num_heads = num_heads
        self._key_dim = key_dim
        self._value_dim = key_dim if value_dim is None else value_dim
        self._dropout = _validate_rate("dropout", dropout)
        self._use_bias = bool(use_bias)
        self._use_gate = bool(use_gate)
        self._output_shape = _standardize_output_shape(output_shape)
        self._attention_axes = _standardize_axes(attention_axes)
        if sliding_window is not None and not _is_positive_int(sliding_window):
            raise ValueError(
                "`sliding_window` must be None or a positive int. "
                f"Received: sliding_window={sliding_window!r}"
            )
        self._sliding_window = sliding_window
        self._flash_attention = bool(
            flash_attention or keras.config.is_flash_attention_enabled()
        )
        if self._flash_attention and self._dropout > 0.0:
            raise ValueError(
                "Dropout is not supported when flash attention is enabled. "
                "Please set dropout to 0.0 to use flash attention. "
                f"Received: dropout={dropout}, flash_attention={flash_attention}"
            )
        self._kernel_initializer = keras.initializers.get(kernel_initializer)
        self._bias_initializer = keras.initializers.get(bias_initializer)
        self._kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self._bias_regularizer = keras.regularizers.get(bias_regularizer)
        self._activity_regularizer = keras.regularizers.get(activity_regularizer)
        self._kernel_constraint = keras.constraints.get(kernel_constraint)
        self._bias_constraint = keras.constraints.get(bias_constraint)
        self.seed = seed
        self.supports_masking = True
        self._inverse_sqrt_key_dim = 1.0 / math.sqrt(float(key_dim))
        self._dropout_layer = None
        if self._dropout > 0:
            self._dropout_layer = dropout_layer(
                self._dropout, self.dtype_policy, "attention_dropout", seed=seed
            )

    # Read-only views of the constructor arguments, as in Keras. (No
    # `output_shape` property: Functional models use that name.)
    @property
    def num_heads(self):
        return self._num_heads

    @property
    def key_dim(self):
        return self._key_dim

    @property
    def value_dim(self):
        return self._value_dim

    @property
    def dropout(self):
        return self._dropout

    @property
    def use_bias(self):
        return self._use_bias

    @property
    def attention_axes(self):
        return self._attention_axes

    @property
    def query_dense(self):
        return self._query_dense

    @property
    def key_dense(self):
        return self._key_dense

    @property
    def value_dense(self):
        return self._value_dense

    @property
    def output_dense(self):
        return self._output_dense

    # Shapes.
    def _resolved_attention_axes(self, query_rank):
        """Attention axes as non-negative input axes, validated."""
        if self._attention_axes is None:
            return tuple(range(1, query_rank - 1))
        axes = tuple(axis % query_rank for axis in self._attention_axes)
        if any(axis in (0, query_rank - 1) for axis in axes) or len(set(axes)) < len(
            axes
        ):
            raise ValueError(
                "`attention_axes` must name distinct axes between the batch axis "
                f"and the feature axis of a rank-{query_rank} input. "
                f"Received: attention_axes={self._attention_axes}"
            )
        return tuple(sorted(axes))

    def _check_shapes(self, query_shape, value_shape, key_shape):
        query_shape, value_shape = tuple(query_shape), tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        if value_shape[1:-1] != key_shape[1:-1]:
            raise ValueError(
                "All dimensions of `value` and `key`, except the last one, must "
                f"be equal. Received: value_shape={value_shape} and "
                f"key_shape={key_shape}"
            )
        if len(query_shape) != len(value_shape) or len(query_shape) < 3:
            raise ValueError(
                "The ranks of `query` and `value` must be equal and at least 3 "
                "(batch, ..., features). Received: "
                f"query_shape={query_shape} and value_shape={value_shape}"
            )
        for name, shape in (
            ("query", query_shape),
            ("value", value_shape),
            ("key", key_shape),
        ):
            if shape[-1] is None:
                raise ValueError(
                    f"The last dimension of `{name}` must be known. "
                    f"Received: {name}_shape={shape}"
                )
        return query_shape, value_shape, key_shape

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        query_shape, value_shape, key_shape = self._check_shapes(
            query_shape, value_shape, key_shape
        )
        rank = len(query_shape)
        heads = self._num_heads
        # Same sublayer (and so weight) order as keras.layers.MultiHeadAttention.
        self._query_dense = self._projection("query", rank, (heads, self._key_dim))
        self._query_dense.build(query_shape)
        self._key_dense = self._projection("key", rank, (heads, self._key_dim))
        self._key_dense.build(key_shape)
        if self._use_gate:
            self._gate_dense = self._projection(
                "gate", rank, (heads, self._value_dim), activation="sigmoid"
            )
            self._gate_dense.build(query_shape)
        self._value_dense = self._projection("value", rank, (heads, self._value_dim))
        self._value_dense.build(value_shape)
        self._build_attention(rank + 1)
        output_shape = self._output_shape or (query_shape[-1],)
        self._output_dense = self._projection(
            "attention_output", rank + 1, output_shape, contracted_dims=2
        )
        self._output_dense.build(tuple(query_shape[:-1]) + (heads, self._value_dim))

    def _projection(self, name, input_rank, output_dims, contracted_dims=1, **kwargs):
        """An `EinsumDense` from the input's last `contracted_dims` axes to `output_dims`."""
        letters = string.ascii_lowercase
        free_dims = input_rank - contracted_dims
        free = letters[:free_dims]
        contracted = letters[free_dims:input_rank]
        produced = letters[input_rank : input_rank + len(output_dims)]
        projection = keras.layers.EinsumDense(
            f"{free}{contracted},{contracted}{produced}->{free}{produced}",
            output_shape=[None] * (free_dims - 1) + list(output_dims),
            bias_axes=produced if self._use_bias else None,
            kernel_initializer=clone_initializer(self._kernel_initializer, name),
            bias_initializer=clone_initializer(self._bias_initializer, f"{name}_bias"),
            kernel_regularizer=self._kernel_regularizer,
            bias_regularizer=self._bias_regularizer,
            activity_regularizer=self._activity_regularizer,
            kernel_constraint=self._kernel_constraint,
            bias_constraint=self._bias_constraint,
            dtype=self.dtype_policy,
            name=name,
            **kwargs,
        )
        # The layer reads the Keras masks itself; the projections pass them on
        # instead of warning that they drop them.
        projection.supports_masking = True
        return projection

    def _build_attention(self, rank):
        """Einsum equations of the attention over projected rank-`rank` tensors.

        Projected tensors are `(batch, ..., heads, channels)`. The scores are
        `(batch-like axes..., heads, query attention axes..., key attention
        axes...)`; the softmax runs jointly over the key attention axes.
        """
        axes = self._resolved_attention_axes(rank - 1)
        letters = string.ascii_lowercase
        query_letters = letters[:rank]
        key_letters = list(query_letters)
        for i, axis in enumerate(axes):
            key_letters[axis] = letters[rank + i]
        key_letters = "".join(key_letters)
        batch_like = [i for i in range(rank - 1) if i not in axes]  # heads included
        score_letters = (
            "".join(query_letters[i] for i in batch_like)
            + "".join(query_letters[i] for i in axes)
            + "".join(key_letters[i] for i in axes)
        )
        self._resolved_axes = axes
        self._dot_product_equation = f"{query_letters},{key_letters}->{score_letters}"
        self._combine_equation = f"{score_letters},{key_letters}->{query_letters}"
        self._softmax_axes = tuple(range(-len(axes), 0))

    def _scores_shape(self, query_shape, value_shape):
        rank = len(query_shape)
        axes = self._resolved_attention_axes(rank)
        batch_like = [query_shape[i] for i in range(rank - 1) if i not in axes]
        return tuple(
            batch_like
            + [self._num_heads]
            + [query_shape[i] for i in axes]
            + [value_shape[i] for i in axes]
        )

    # Masks.
    def _expand_mask(self, mask, rank):
        """Inserts the missing leading axes (heads, batch-like) of a mask."""
        axis = -2 * len(self._resolved_axes) - 1
        while len(mask.shape) < rank:
            mask = ops.expand_dims(mask, axis)
        return mask

    def _compute_causal_mask(self, query, value=None):
        """`(1, T, S)` boolean mask, `True` where key position `<=` query position."""
        query_length = ops.shape(query)[1]
        key_length = query_length if value is None else ops.shape(value)[1]
        return causal_mask(query_length, key_length)

    def _compute_sliding_window_mask(self, query, value=None):
        """`(1, T, S)` boolean band `|i - j| < sliding_window`."""
        query_length = ops.shape(query)[1]
        key_length = query_length if value is None else ops.shape(value)[1]
        rows = ops.expand_dims(ops.arange(query_length, dtype="int32"), -1)
        cols = ops.expand_dims(ops.arange(key_length, dtype="int32"), 0)
        band = ops.less(ops.abs(ops.subtract(rows, cols)), self._sliding_window)
        return ops.expand_dims(band, 0)

    def _compute_attention_mask(
        self,
        query,
        value,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        use_causal_mask=False,
    ):
        """AND of the padding, explicit, causal and sliding-window masks.

        Returns `None` or a boolean mask broadcastable to `(B, T, S)`, or to
        `(B, num_heads, T, S)` when `attention_mask` is per head.
        """
        masks = []
        if query_mask is not None:
            masks.append(ops.expand_dims(ops.cast(query_mask, "bool"), -1))
        for padding in (value_mask, key_mask):
            if padding is not None:
                masks.append(ops.expand_dims(ops.cast(padding, "bool"), -2))
        if use_causal_mask:
            masks.append(self._compute_causal_mask(query, value))
        if self._sliding_window is not None:
            masks.append(self._compute_sliding_window_mask(query, value))
        if attention_mask is not None:
            masks.append(ops.cast(attention_mask, "bool"))
        if not masks:
            return None
        rank = max(len(m.shape) for m in masks)
        merged = None
        for mask in masks:
            if len(mask.shape) < rank:
                mask = self._expand_mask(mask, rank)
            merged = mask if merged is None else ops.logical_and(merged, mask)
        return merged

    def _masked_softmax(self, attention_scores, attention_mask=None):
        """Float32 softmax over the key axes; masked keys and all-masked rows get 0."""
        if attention_mask is not None:
            attention_mask = self._expand_mask(
                attention_mask, len(attention_scores.shape)
            )
        return masked_softmax(attention_scores, attention_mask, axis=self._softmax_axes)

    # Attention.
    def _compute_attention(
        self,
        query,
        key,
        value,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
        use_causal_mask=False,
    ):
        """Attention over projected `(B, T, N, key_dim)`-style tensors.

        The override point for custom attention. `attention_mask` and
        `use_causal_mask` are combined with AND. Returns `(output, scores)`:
        `(B, T, N, value_dim)` and `(B, N, T, S)` (`scores` is `None` on the
        flash-attention path).
        """
        if self._flash_attention and return_attention_scores:
            raise ValueError(
                "Returning attention scores is not supported when flash "
                "attention is enabled. Please disable flash attention to access"
                " attention scores. Received: return_attention_scores=True"
            )
        if use_causal_mask:
            causal = self._compute_causal_mask(query, value)
            attention_mask = (
                causal
                if attention_mask is None
                else ops.logical_and(
                    self._expand_mask(ops.cast(attention_mask, "bool"), 3), causal
                )
            )
        if self._flash_attention and len(query.shape) == 4:
            if attention_mask is not None:
                attention_mask = self._expand_mask(ops.cast(attention_mask, "bool"), 4)
            output = ops.dot_product_attention(
                query,
                key,
                value,
                mask=attention_mask,
                scale=self._inverse_sqrt_key_dim,
                flash_attention=True,
            )
            return output, None

        # Scale the query before the product (smaller numbers in float16).
        query = ops.multiply(query, ops.cast(self._inverse_sqrt_key_dim, query.dtype))
        scores = dot_product_scores(self._dot_product_equation, query, key)
        weights = ops.cast(self._masked_softmax(scores, attention_mask), value.dtype)
        dropped = weights
        if self._dropout_layer is not None:
            dropped = self._dropout_layer(weights, training=training)
        output = ops.einsum(self._combine_equation, dropped, value)  # (B, T, N, dv)
        return output, weights

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
        mask = self._compute_attention_mask(
            query,
            value,
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
        )

        # Per-head projections: (B, T, N, key_dim), (B, S, N, key_dim), ...
        gate = self._gate_dense(query) if self._use_gate else None
        projected_query = self._query_dense(query)
        projected_key = self._key_dense(key)
        projected_value = self._value_dense(value)

        # Attention in every head. The causal mask is already in `mask`, so
        # overrides of `_compute_attention` without `use_causal_mask` work.
        context, scores = self._compute_attention(
            projected_query,
            projected_key,
            projected_value,
            mask,
            training,
            return_attention_scores,
        )  # (B, T, N, dv), (B, N, T, S)

        # Concatenate the heads and project.
        if gate is not None:
            context = ops.multiply(context, gate)
        output = self._output_dense(context)
        if return_attention_scores:
            return output, scores
        return output

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        query_shape, _, _ = self._check_shapes(query_shape, value_shape, key_shape)
        return query_shape[:-1] + (self._output_shape or (query_shape[-1],))

    def compute_output_spec(
        self, query, value=None, key=None, return_attention_scores=False, **kwargs
    ):
        value = query if value is None else value
        output = keras.KerasTensor(
            self.compute_output_shape(
                query.shape, value.shape, None if key is None else key.shape
            ),
            dtype=self.compute_dtype,
        )
        if return_attention_scores:
            scores = keras.KerasTensor(
                self._scores_shape(query.shape, value.shape), dtype=self.compute_dtype
            )
            return output, scores
        return output

    # Saving.
    def load_own_variables(self, store):
        if not len(store.keys()):
            return
        # Files written by kerasdl before the projections became sublayers keep
        # the eight (or four, without biases) projection weights as this
        # layer's own, in the sublayers' order.
        projections = [
            self._query_dense,
            self._key_dense,
            self._value_dense,
            self._output_dense,
        ]
        variables = [v for projection in projections for v in projection.weights]
        if self._use_gate or len(store.keys()) != len(variables):
            raise ValueError(
                f"Layer '{self.name}' expected its weights in its projections "
                f"`query`, `key`, `value`, `attention_output`, but the file holds "
                f"{len(store.keys())} weights of its own."
            )
        for i, variable in enumerate(variables):
            variable.assign(store[str(i)])
        for projection in projections:
            _skip_next_empty_load(projection)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self._num_heads,
                "key_dim": self._key_dim,
                "value_dim": self._value_dim,
                "dropout": self._dropout,
                "use_bias": self._use_bias,
                "output_shape": self._output_shape,
                "attention_axes": self._attention_axes,
                "sliding_window": self._sliding_window,
                "kernel_initializer": keras.initializers.serialize(
                    self._kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self._bias_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self._kernel_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(
                    self._bias_regularizer
                ),
                "activity_regularizer": keras.regularizers.serialize(
                    self._activity_regularizer
                ),
                "kernel_constraint": keras.constraints.serialize(
                    self._kernel_constraint
                ),
                "bias_constraint": keras.constraints.serialize(self._bias_constraint),
                "use_gate": self._use_gate,
                "seed": self.seed,
            }
        )
        return config


def _skip_next_empty_load(layer):
    """Makes `layer` ignore its next, empty, weight store (weights restored already)."""
    load = layer.load_own_variables

    def load_own_variables(store):
        del layer.load_own_variables  # back to the class's method
        if len(store.keys()):
            load(store)

    layer.load_own_variables = load_own_variables


def _is_positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _standardize_output_shape(output_shape):
    if output_shape is None:
        return None
    shape = (output_shape,) if isinstance(output_shape, int) else output_shape
    if not isinstance(shape, (tuple, list)) or not all(
        _is_positive_int(d) for d in shape
    ):
        raise ValueError(
            "Invalid `output_shape`: expected a positive int or a tuple/list of "
            f"positive ints. Received: output_shape={output_shape!r}"
        )
    return tuple(shape) or None


def _standardize_axes(attention_axes):
    if attention_axes is None:
        return None
    axes = (attention_axes,) if isinstance(attention_axes, int) else attention_axes
    if not isinstance(axes, (tuple, list)) or not all(
        isinstance(a, int) and not isinstance(a, bool) for a in axes
    ):
        raise ValueError(
            "`attention_axes` must be an int, list, or tuple of ints. "
            f"Received: attention_axes={attention_axes!r}"
        )
    return tuple(axes)
