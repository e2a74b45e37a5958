import keras
from keras import ops

from kerasdl.layers.attention._masking import causal_mask, keras_mask_of
from kerasdl.layers.transformer._block import TransformerBlock
from kerasdl.layers.transformer._sublayers import check_hidden_dim


@keras.saving.register_keras_serializable(package="kerasdl")
class TransformerDecoder(TransformerBlock):
    """One Transformer decoder block: causal self-attention, cross-attention, FFN.

    The block of the original encoder-decoder Transformer. With the default
    post-norm "add & norm" (`normalize_first=False`):

    ```
    x = LayerNorm(x + Dropout(MultiHeadAttention(x, x, use_causal_mask=True)))
    x = LayerNorm(x + Dropout(MultiHeadAttention(x, encoder_sequence)))  # if given
    x = LayerNorm(x + Dropout(Dense(d)(Dense(intermediate_dim, activation)(x))))
    ```

    `normalize_first=True` gives the pre-norm variant,
    `x = x + Dropout(Sublayer(LayerNorm(x)))`. The self-attention is causal by
    default, so output position `t` depends only on decoder positions `<= t`:
    training with teacher forcing sees what greedy or beam decoding will see.
    When the layer is first called without `encoder_sequence` it is a
    decoder-only (GPT-style) block and has no cross-attention weights.

    Padding positions of the decoder (its Keras mask or
    `decoder_padding_mask`) and of the encoder (`encoder_sequence`'s Keras mask
    or `encoder_padding_mask`) are never attended to.

    Incremental decoding (key/value cache): pass `self_attention_cache` (from
    `initial_self_attention_cache(batch_size, max_length)`) and `cache_index`,
    and call the layer on the new positions only, `cache_index ...
    cache_index + t - 1`; it writes their self-attention keys and values into
    the fixed-size buffers (`ops.slice_update`, so it compiles under
    `tf.function`, XLA and `jax.jit` with `cache_index` a tensor) and returns
    `(outputs, updated_cache)`. Each position attends to the cached positions
    before it and to itself, which gives the outputs of an uncached call on the
    whole prefix. The cross-attention keys and values of the encoder outputs
    do not change between steps: compute them once with
    `cross_attention_cache(encoder_sequence)` and pass them as
    `cross_attention_cache` (then `encoder_sequence` may be left out). In the
    cached mode the decoder's padding mask is not read: a generated prefix has
    no padding, and causal attention keeps trailing padding from changing the
    positions before it.

    Args:
        intermediate_dim: int, hidden width of the feed-forward network.
        num_heads: int, number of attention heads.
        dropout: float in `[0, 1)`, dropout after every sublayer (and on the
            attention weights). Defaults to `0.0`.
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
        decoder_sequence: `(batch, target_length, d)`.
        encoder_sequence: optional `(batch, source_length, d_enc)`, the
            encoder's output. Required if the layer was built with it.
        decoder_padding_mask: optional boolean `(batch, target_length)`.
            Defaults to `decoder_sequence`'s Keras mask.
        decoder_attention_mask: optional boolean
            `(batch, target_length, target_length)`, ANDed with the causal mask.
        encoder_padding_mask: optional boolean `(batch, source_length)`.
            Defaults to `encoder_sequence`'s Keras mask.
        encoder_attention_mask: optional boolean
            `(batch, target_length, source_length)`.
        use_causal_mask: bool, causal self-attention. Defaults to `True`.
        training: bool, whether dropout is active.
        return_attention_scores: bool, also return the attention weights:
            `(outputs, self_attention_scores, cross_attention_scores)`, of
            shapes `(batch, num_heads, target_length, target_length)` and
            `(batch, num_heads, target_length, source_length)`, or
            `(outputs, self_attention_scores)` for a block without
            cross-attention. Defaults to `False`. Not with a cache.
        self_attention_cache: optional dict `{"key", "value"}` of
            `(batch, max_length, num_heads, head_dim)` buffers (see
            `initial_self_attention_cache`): decode incrementally. The call
            then returns `(outputs, updated_self_attention_cache)`.
        cache_index: int or int32 scalar tensor, position of the first
            token of `decoder_sequence`. Required with `self_attention_cache`.
        cross_attention_cache: optional dict `{"key", "value"}` of
            `(batch, source_length, num_heads, head_dim)` tensors from
            `cross_attention_cache(encoder_sequence)`, used instead of
            projecting `encoder_sequence` again.

    Reference:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762), section 3.1.

    Example:

    ```python
    decoder = kerasdl.layers.TransformerDecoder(intermediate_dim=128, num_heads=4)
    y = decoder(target_embeddings, encoder_outputs)  # (batch, target_length, d)

    # Incremental decoding: the prefix, then one token per call.
    cache = decoder.initial_self_attention_cache(batch_size, max_length=20)
    cross = decoder.cross_attention_cache(encoder_outputs)
    y, cache = decoder(prefix_embeddings, self_attention_cache=cache,
                       cache_index=0, cross_attention_cache=cross)
    y, cache = decoder(next_embedding, self_attention_cache=cache,
                       cache_index=prefix_length, cross_attention_cache=cross)
    ```
    """

    cross_attention = None  # built only when called with an encoder_sequence

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        check_hidden_dim(decoder_sequence_shape[-1], self.num_heads)
        self._build_attention(
            "self_attention", decoder_sequence_shape, decoder_sequence_shape
        )
        if encoder_sequence_shape is not None:  # encoder-decoder models only
            self._build_attention(
                "cross_attention", decoder_sequence_shape, encoder_sequence_shape
            )
        self._build_feedforward(decoder_sequence_shape)

    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        decoder_attention_mask=None,
        encoder_padding_mask=None,
        encoder_attention_mask=None,
        use_causal_mask=True,
        training=None,
        return_attention_scores=False,
        self_attention_cache=None,
        cache_index=None,
        cross_attention_cache=None,
    ):
        if self_attention_cache is not None:
            return self._call_with_cache(
                decoder_sequence,
                encoder_sequence,
                self_attention_cache,
                cache_index,
                cross_attention_cache,
                decoder_attention_mask=decoder_attention_mask,
                encoder_padding_mask=encoder_padding_mask,
                encoder_attention_mask=encoder_attention_mask,
                training=training,
                return_attention_scores=return_attention_scores,
            )
        if cross_attention_cache is not None:
            raise ValueError(
                "`cross_attention_cache` is only read together with "
                "`self_attention_cache` and `cache_index`. "
                "Received: self_attention_cache=None"
            )
        has_cross_attention = self.cross_attention is not None
        if has_cross_attention != (encoder_sequence is not None):
            raise ValueError(
                "The layer was built "
                + ("with" if has_cross_attention else "without")
                + " `encoder_sequence`, and must always be called that way. "
                f"Received: encoder_sequence={'None' if encoder_sequence is None else 'a tensor'}"
            )
        if decoder_padding_mask is None:
            decoder_padding_mask = keras_mask_of(decoder_sequence)
        if encoder_sequence is not None and encoder_padding_mask is None:
            encoder_padding_mask = keras_mask_of(encoder_sequence)

        def attend(attention, value, **kwargs):
            def sublayer(h):
                outputs = attention(
                    h,
                    h if value is None else value,
                    query_mask=decoder_padding_mask,
                    training=training,
                    return_attention_scores=return_attention_scores,
                    **kwargs,
                )
                return outputs if return_attention_scores else (outputs, None)

            return sublayer

        x = decoder_sequence  # (batch, target_length, d)

        # Causal self-attention block.
        x, self_scores = self._add_and_norm(
            attend(
                self.self_attention,
                None,
                value_mask=decoder_padding_mask,
                attention_mask=decoder_attention_mask,
                use_causal_mask=use_causal_mask,
            ),
            self.self_attention_norm,
            self.self_attention_dropout,
            x,
            training,
        )

        # Cross-attention block: decoder states ask, encoder outputs answer.
        cross_scores = None
        if has_cross_attention:
            x, cross_scores = self._add_and_norm(
                attend(
                    self.cross_attention,
                    encoder_sequence,
                    value_mask=encoder_padding_mask,
                    attention_mask=encoder_attention_mask,
                ),
                self.cross_attention_norm,
                self.cross_attention_dropout,
                x,
                training,
            )

        x = self._feedforward_block(x, training)
        if not return_attention_scores:
            return x
        if has_cross_attention:
            return x, self_scores, cross_scores
        return x, self_scores

    # Incremental decoding -----------------------------------------------------------

    def _head_dims(self):
        if not self.built:
            raise ValueError(
                "The layer must be built (called once) before its caches are "
                f"made. Received: layer {self.name!r}, not built"
            )
        return self.num_heads, self.self_attention.key_dim

    def initial_self_attention_cache(self, batch_size, max_length):
        """Empty self-attention key/value buffers for incremental decoding.

        Args:
            batch_size: int or scalar tensor, rows decoded together.
            max_length: int, the most positions the cache will hold.

        Returns:
            dict `{"key": ..., "value": ...}`, zeros of shape
            `(batch_size, max_length, num_heads, head_dim)` in the layer's
            compute dtype.
        """
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(
                "`max_length` must be a positive int. "
                f"Received: max_length={max_length!r}"
            )
        heads, head_dim = self._head_dims()
        shape = (batch_size, max_length, heads, head_dim)
        return {
            "key": ops.zeros(shape, dtype=self.compute_dtype),
            "value": ops.zeros(shape, dtype=self.compute_dtype),
        }

    def cross_attention_cache(self, encoder_sequence):
        """The cross-attention keys and values of `encoder_sequence`, computed once.

        Args:
            encoder_sequence: `(batch, source_length, d_enc)`, the encoder's output.

        Returns:
            dict `{"key": ..., "value": ...}` of shape
            `(batch, source_length, num_heads, head_dim)`.
        """
        self._head_dims()
        if self.cross_attention is None:
            raise ValueError(
                "The layer has no cross-attention (it was built without "
                f"`encoder_sequence`). Received: layer {self.name!r}"
            )
        return {
            "key": self.cross_attention.key_dense(encoder_sequence),
            "value": self.cross_attention.value_dense(encoder_sequence),
        }

    @staticmethod
    def _attend_projected(attention, query, key, value, mask, training):
        """`attention`'s output for the query, on keys/values projected already."""
        projected_query = attention.query_dense(query)  # (batch, t, heads, head_dim)
        context, _ = attention._compute_attention(
            projected_query, key, value, mask, training
        )
        return attention.output_dense(context), None  # (batch, t, d)

    def _call_with_cache(
        self,
        decoder_sequence,
        encoder_sequence,
        self_attention_cache,
        cache_index,
        cross_attention_cache,
        decoder_attention_mask,
        encoder_padding_mask,
        encoder_attention_mask,
        training,
        return_attention_scores,
    ):
        if cache_index is None:
            raise ValueError(
                "`cache_index` (the position of the first new token) is required "
                "with `self_attention_cache`. Received: cache_index=None"
            )
        if return_attention_scores:
            raise ValueError(
                "Attention scores are not returned in the cached mode. "
                "Received: return_attention_scores=True"
            )
        has_cross_attention = self.cross_attention is not None
        has_encoder = encoder_sequence is not None or cross_attention_cache is not None
        if has_cross_attention != has_encoder:
            raise ValueError(
                "The layer was built "
                + ("with" if has_cross_attention else "without")
                + " `encoder_sequence`; pass "
                + (
                    "`encoder_sequence` or `cross_attention_cache`"
                    if has_cross_attention
                    else "neither"
                )
                + " with the cache. Received: encoder_sequence="
                f"{'None' if encoder_sequence is None else 'a tensor'}, "
                f"cross_attention_cache={'None' if cross_attention_cache is None else 'a dict'}"
            )
        if encoder_sequence is not None and encoder_padding_mask is None:
            encoder_padding_mask = keras_mask_of(encoder_sequence)
        cache_index = ops.cast(cache_index, "int32")
        max_length = self_attention_cache["key"].shape[1]
        x = decoder_sequence  # (batch, t, d): positions cache_index ... + t - 1
        new_cache = {}

        def self_attention(h):
            # Write the new keys/values at cache_index; attend to positions <= own.
            start = [0, cache_index, 0, 0]
            for name, dense in (
                ("key", self.self_attention.key_dense),
                ("value", self.self_attention.value_dense),
            ):
                new_cache[name] = ops.slice_update(
                    self_attention_cache[name],
                    start,
                    ops.cast(dense(h), self_attention_cache[name].dtype),
                )
            mask = causal_mask(ops.shape(h)[1], max_length, offset=cache_index)
            if decoder_attention_mask is not None:
                mask = ops.logical_and(mask, ops.cast(decoder_attention_mask, "bool"))
            return self._attend_projected(
                self.self_attention,
                h,
                new_cache["key"],
                new_cache["value"],
                mask,
                training,
            )

        # Causal self-attention block, over the cache.
        x, _ = self._add_and_norm(
            self_attention,
            self.self_attention_norm,
            self.self_attention_dropout,
            x,
            training,
        )

        # Cross-attention block, on keys/values computed once.
        if has_cross_attention:
            cross = cross_attention_cache
            if cross is None:
                cross = self.cross_attention_cache(encoder_sequence)
            mask = None
            if encoder_padding_mask is not None:
                mask = ops.expand_dims(ops.cast(encoder_padding_mask, "bool"), 1)
            if encoder_attention_mask is not None:
                explicit = ops.cast(encoder_attention_mask, "bool")
                mask = explicit if mask is None else ops.logical_and(mask, explicit)
            x, _ = self._add_and_norm(
                lambda h: self._attend_projected(
                    self.cross_attention,
                    h,
                    cross["key"],
                    cross["value"],
                    mask,
                    training,
                ),
                self.cross_attention_norm,
                self.cross_attention_dropout,
                x,
                training,
            )

        x = self._feedforward_block(x, training)
        return x, new_cache

    def compute_mask(self, decoder_sequence, mask=None):
        return mask

    def compute_output_shape(self, decoder_sequence_shape, encoder_sequence_shape=None):
        return decoder_sequence_shape

    def compute_output_spec(
        self,
        decoder_sequence,
        encoder_sequence=None,
        return_attention_scores=False,
        **kwargs,
    ):
        output = keras.KerasTensor(decoder_sequence.shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return output
        batch, target_length = decoder_sequence.shape[0], decoder_sequence.shape[1]
        key_lengths = [target_length]  # self-attention
        if encoder_sequence is not None:
            key_lengths.append(encoder_sequence.shape[1])  # cross-attention
        outputs = [output] + [
            keras.KerasTensor(
                (batch, self.num_heads, target_length, length),
                dtype=self.compute_dtype,
            )
            for length in key_lengths
        ]
        return tuple(outputs)
