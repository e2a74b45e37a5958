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
class TransformerDecoder(keras.layers.Layer):
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
            cross-attention. Defaults to `False`.

    Reference:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762), section 3.1.

    Example:

    ```python
    decoder = kerasdl.layers.TransformerDecoder(intermediate_dim=128, num_heads=4)
    y = decoder(target_embeddings, encoder_outputs)  # (batch, target_length, d)
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
        self.cross_attention = None

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

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        hidden_dim = decoder_sequence_shape[-1]
        check_hidden_dim(hidden_dim, self.num_heads)
        head_dim = hidden_dim // self.num_heads

        # Causal self-attention block.
        self.self_attention = MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=head_dim,
            dropout=self.dropout,
            **self._dense_kwargs("self_attention"),
        )
        self.self_attention.build(decoder_sequence_shape, decoder_sequence_shape)
        self.self_attention_norm = self._norm(
            "self_attention_norm", decoder_sequence_shape
        )
        self.self_attention_dropout = dropout_layer(
            self.dropout, self.dtype_policy, "self_attention_dropout"
        )

        # Cross-attention block (encoder-decoder models only).
        if encoder_sequence_shape is not None:
            self.cross_attention = MultiHeadAttention(
                num_heads=self.num_heads,
                key_dim=head_dim,
                dropout=self.dropout,
                **self._dense_kwargs("cross_attention"),
            )
            self.cross_attention.build(decoder_sequence_shape, encoder_sequence_shape)
            self.cross_attention_norm = self._norm(
                "cross_attention_norm", decoder_sequence_shape
            )
            self.cross_attention_dropout = dropout_layer(
                self.dropout, self.dtype_policy, "cross_attention_dropout"
            )

        # Feed-forward block.
        self.feedforward_intermediate = keras.layers.Dense(
            self.intermediate_dim,
            activation=self.activation,
            **self._dense_kwargs("feedforward_intermediate"),
        )
        self.feedforward_intermediate.build(decoder_sequence_shape)
        self.feedforward_output = keras.layers.Dense(
            hidden_dim, **self._dense_kwargs("feedforward_output")
        )
        self.feedforward_output.build(
            tuple(decoder_sequence_shape[:-1]) + (self.intermediate_dim,)
        )
        self.feedforward_norm = self._norm("feedforward_norm", decoder_sequence_shape)
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
    ):
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

        # Feed-forward block.
        x, _ = self._add_and_norm(
            lambda h: (self.feedforward_output(self.feedforward_intermediate(h)), None),
            self.feedforward_norm,
            self.feedforward_dropout,
            x,
            training,
        )
        if not return_attention_scores:
            return x
        if has_cross_attention:
            return x, self_scores, cross_scores
        return x, self_scores

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
