"""Decoder-only Transformer language model (GPT-style) with a key/value cache."""

import keras
from keras import ops

from kerasdl.layers.transformer.position_embedding import PositionEmbedding
from kerasdl.layers.transformer.transformer_decoder import TransformerDecoder
from kerasdl.models.common import check_positive_ints, check_rates
from kerasdl.models.registry import register_language_model


@keras.saving.register_keras_serializable(package="kerasdl")
class TransformerLanguageModel(keras.Model):
    """Decoder-only Transformer LM: causal kerasdl `TransformerDecoder` blocks.

    Token embeddings plus learned position embeddings (`PositionEmbedding`;
    initialized N(0, 0.02) and N(0, 0.01) as GPT-2's),
    dropout, `num_layers` pre-norm `TransformerDecoder` blocks without
    cross-attention (causal self-attention and a feed-forward network), a final
    layer normalization and a dense layer giving the next token's logits: output
    position `t` predicts token `t + 1` from tokens `0 ... t`.

    It implements kerasdl's language-model protocol: `call(tokens)` on whole
    sequences (training, scoring), and `initial_cache(batch_size, max_length)` /
    `call_with_cache(tokens, cache, index)` for generation, where each new token
    costs one step: the blocks keep the self-attention keys and values of the
    earlier positions in fixed-size buffers. Both give the same logits; the
    cached call works eagerly, inside `tf.function` and under `jax.jit` with
    `index` a tensor.

    Token id 0 is padding and id 1 the unknown token (both counted in
    `vocabulary_size`). Padding is not masked: it may only trail a sequence, and
    causal attention keeps it from changing the positions before it.

    The model is built (its weights exist) as soon as it is constructed.

    Args:
        vocabulary_size: int, number of token ids, padding and unknown included.
        sequence_length: int, the longest sequence (prompt and generated tokens)
            the model reads; the size of the position embedding.
        num_layers: int, decoder blocks. Defaults to `2`.
        num_heads: int, attention heads. Defaults to `4`.
        hidden_dim: int, model width `d`, divisible by `num_heads`. Defaults to
            `128`.
        intermediate_dim: int, feed-forward width. Defaults to `512`.
        dropout: float in `[0, 1)`, dropout on the embeddings and in the blocks.
            Defaults to `0.1`.
        layer_norm_epsilon: float, epsilon of the layer normalizations.
            Defaults to `1e-5`.
        **kwargs: base model arguments, such as `name`.

    Call arguments:
        tokens: int `(batch, length)` token ids, `length <= sequence_length`.
        training: bool, whether dropout is active.

    Returns:
        float32 logits `(batch, length, vocabulary_size)`.

    Reference:
        - [Radford et al., 2019](https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf)
          (GPT-2: pre-norm blocks, final layer normalization).

    Example:

    ```python
    model = kerasdl.models.TransformerLanguageModel(
        vocabulary_size=60, sequence_length=64, num_layers=2, num_heads=4,
        hidden_dim=64, intermediate_dim=256)
    logits = model(token_ids)  # (batch, length, 60)
    cache = model.initial_cache(batch_size, max_length=64)
    logits, cache = model.call_with_cache(prompt_ids, cache, 0)  # the prompt
    logits, cache = model.call_with_cache(next_ids, cache, prompt_length)
    ```
    """

    def __init__(
        self,
        vocabulary_size,
        sequence_length,
        num_layers=2,
        num_heads=4,
        hidden_dim=128,
        intermediate_dim=512,
        dropout=0.1,
        layer_norm_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_ints(
            vocabulary_size=vocabulary_size,
            sequence_length=sequence_length,
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
        )
        if hidden_dim % num_heads:
            raise ValueError(
                "`hidden_dim` must be divisible by `num_heads`. "
                f"Received: hidden_dim={hidden_dim}, num_heads={num_heads}"
            )
        check_rates(dropout=dropout)
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = float(dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)

        # Layers.
        # GPT-2's small embeddings, positions smaller than tokens: with Keras'
        # defaults (tokens uniform +-0.05, positions Glorot, ~3x larger) the
        # model spends its first hundreds of steps at bigram level.
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size,
            hidden_dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="token_embedding",
        )
        self.position_embedding = PositionEmbedding(
            sequence_length,
            initializer=keras.initializers.RandomNormal(stddev=0.01),
            name="position_embedding",
        )
        self.embedding_dropout = keras.layers.Dropout(dropout, name="embedding_dropout")
        self.decoder_blocks = [
            TransformerDecoder(
                intermediate_dim,
                num_heads,
                dropout=dropout,
                activation="gelu",
                layer_norm_epsilon=layer_norm_epsilon,
                normalize_first=True,
                name=f"decoder_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="final_norm"
        )
        self.output_projection = keras.layers.Dense(
            vocabulary_size, name="output_projection"
        )

        # Weights now, so `initial_cache` works before the first call.
        features = (None, None, hidden_dim)
        self.token_embedding.build((None, None))
        self.position_embedding.build(features)
        for block in self.decoder_blocks:
            block.build(features)
        self.final_norm.build(features)
        self.output_projection.build(features)
        self.built = True

    def _embed(self, tokens, index, training):
        x = self.token_embedding(tokens)  # (batch, t, d)
        x = x + self.position_embedding(x, start_index=index)
        return self.embedding_dropout(x, training=training)

    def _logits(self, x):
        return ops.cast(self.output_projection(self.final_norm(x)), "float32")

    def call(self, tokens, training=False):
        x = self._embed(tokens, 0, training)
        for block in self.decoder_blocks:
            x = block(x, training=training)  # causal self-attention
        return self._logits(x)  # (batch, length, vocabulary_size)

    def initial_cache(self, batch_size, max_length):
        """Empty key/value buffers for `call_with_cache`.

        Args:
            batch_size: int or scalar tensor, rows generated together.
            max_length: int, the most positions generated (prompt included),
                at most `sequence_length`.

        Returns:
            A list (one entry per block) of dicts `{"key", "value"}` of zeros
            `(batch_size, max_length, num_heads, hidden_dim // num_heads)`.
        """
        if not isinstance(max_length, int) or not 1 <= max_length <= (
            self.sequence_length
        ):
            raise ValueError(
                f"`max_length` must be an int in [1, {self.sequence_length}] "
                f"(the model's sequence_length). Received: max_length={max_length!r}"
            )
        return [
            block.initial_self_attention_cache(batch_size, max_length)
            for block in self.decoder_blocks
        ]

    def call_with_cache(self, tokens, cache, index):
        """Logits of `tokens` at positions `index ...`, reading and updating `cache`.

        Args:
            tokens: int `(batch, t)`, the tokens at positions
                `index ... index + t - 1` (`t > 1` for a prompt, `1` per
                generated token).
            cache: the list `initial_cache` returned, holding what the positions
                before `index` left.
            index: int or int32 scalar tensor.

        Returns:
            `(logits, cache)`: float32 `(batch, t, vocabulary_size)`, the same as
            `call` on the whole prefix gives at these positions, and the updated
            cache.
        """
        if len(cache) != len(self.decoder_blocks):
            raise ValueError(
                f"`cache` must hold one entry per decoder block "
                f"({len(self.decoder_blocks)}). Received: {len(cache)} entries"
            )
        x = self._embed(tokens, index, False)
        new_cache = []
        for block, block_cache in zip(self.decoder_blocks, cache):
            x, block_cache = block(
                x, self_attention_cache=block_cache, cache_index=index
            )
            new_cache.append(block_cache)
        return self._logits(x), new_cache

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


def transformer_language_model(vocabulary_size, *, sequence_length, **kwargs):
    """Builds a `TransformerLanguageModel` (the registry's `transformer_lm`)."""
    return TransformerLanguageModel(vocabulary_size, sequence_length, **kwargs)


register_language_model("transformer_lm", transformer_language_model)
