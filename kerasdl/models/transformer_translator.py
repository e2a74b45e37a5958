"""Encoder-decoder Transformer for translation (Vaswani et al., 2017)."""

import math

import keras
from keras import ops

from kerasdl.decoding import generate_tokens
from kerasdl.layers.transformer.sine_position_encoding import SinePositionEncoding
from kerasdl.layers.transformer.transformer_decoder import TransformerDecoder
from kerasdl.layers.transformer.transformer_encoder import TransformerEncoder
from kerasdl.models.common import check_positive_ints, check_rates


@keras.saving.register_keras_serializable(package="kerasdl")
class TransformerTranslator(keras.Model):
    """Encoder-decoder Transformer: kerasdl `TransformerEncoder`/`TransformerDecoder`.

    Source and target tokens are embedded (scaled by `sqrt(hidden_dim)`), sine
    position encodings are added, `num_layers` encoder blocks read the source and
    `num_layers` decoder blocks (causal self-attention, cross-attention on the
    encoder output) read the target shifted right; a dense layer gives the next
    token's logits. Padding (id 0) is masked in every attention.

    Generation (`generate`) goes through `kerasdl.decoding` (greedy or beam
    search). By default each step runs the decoder on the newest token only: the
    decoder blocks keep the self-attention keys and values of the earlier
    positions in fixed-size buffers, and the cross-attention keys and values of
    the encoder outputs are computed once per sentence (`TransformerDecoder`'s
    key/value cache). `use_cache=False` reruns the decoder over the whole output
    buffer at every step instead; both give the same tokens.

    Args:
        source_vocabulary_size: int, source vocabulary size.
        target_vocabulary_size: int, target vocabulary size.
        hidden_dim: int, model width `d`. Defaults to `256`.
        num_layers: int, encoder blocks and decoder blocks (each). Defaults to `2`.
        num_heads: int, attention heads. Defaults to `4`.
        intermediate_dim: int, feed-forward width. Defaults to `512`.
        dropout: float, dropout in the blocks and on the embeddings. Defaults to
            `0.1`.
        **kwargs: base model arguments, such as `name`.

    Call arguments:
        inputs: dict with `"source"` int `(batch, source_length)` and
            `"target_in"` int `(batch, target_length)`. Returns float32 logits
            `(batch, target_length, target_vocabulary_size)`.

    Reference:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762).

    Example:

    ```python
    model = kerasdl.models.TransformerTranslator(5000, 6000, hidden_dim=64)
    logits = model({"source": source_ids, "target_in": target_ids})
    tokens = model.generate(source_ids, start_token_id=2, end_token_id=3,
                            max_length=20, beam_size=4)
    ```
    """

    def __init__(
        self,
        source_vocabulary_size,
        target_vocabulary_size,
        hidden_dim=256,
        num_layers=2,
        num_heads=4,
        intermediate_dim=512,
        dropout=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_ints(
            source_vocabulary_size=source_vocabulary_size,
            target_vocabulary_size=target_vocabulary_size,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
        )
        if hidden_dim % num_heads:
            raise ValueError(
                "`hidden_dim` must be divisible by `num_heads`. "
                f"Received: hidden_dim={hidden_dim}, num_heads={num_heads}"
            )
        check_rates(dropout=dropout)
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = float(dropout)

        self.source_embedding = keras.layers.Embedding(
            source_vocabulary_size, hidden_dim, name="source_embedding"
        )
        self.target_embedding = keras.layers.Embedding(
            target_vocabulary_size, hidden_dim, name="target_embedding"
        )
        self.position_encoding = SinePositionEncoding(name="position_encoding")
        self.embedding_dropout = keras.layers.Dropout(dropout, name="embedding_dropout")
        self.encoder_blocks = [
            TransformerEncoder(
                intermediate_dim, num_heads, dropout=dropout, name=f"encoder_{i}"
            )
            for i in range(num_layers)
        ]
        self.decoder_blocks = [
            TransformerDecoder(
                intermediate_dim, num_heads, dropout=dropout, name=f"decoder_{i}"
            )
            for i in range(num_layers)
        ]
        self.output_projection = keras.layers.Dense(
            target_vocabulary_size, name="output_projection"
        )

    def _embed(self, embedding, tokens, training, start_index=0):
        x = embedding(tokens) * math.sqrt(self.hidden_dim)  # (batch, length, d)
        x = x + self.position_encoding(x, start_index=start_index)
        return self.embedding_dropout(x, training=training)

    def encode(self, source, training=False):
        """Source ids `(batch, S)` -> dict(encoder_outputs `(batch, S, d)`, source_mask)."""
        source_mask = ops.not_equal(source, 0)
        x = self._embed(self.source_embedding, source, training)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=source_mask, training=training)
        return {"encoder_outputs": x, "source_mask": ops.cast(source_mask, "float32")}

    def _decoder_inputs(self, target_in, training):
        return self._embed(self.target_embedding, target_in, training), ops.not_equal(
            target_in, 0
        )

    def decode(self, target_in, encoder_outputs, source_mask, training=False):
        """Target ids `(batch, T)` -> float32 logits `(batch, T, V)`."""
        x, target_mask = self._decoder_inputs(target_in, training)
        source_mask = ops.cast(source_mask, "bool")
        for block in self.decoder_blocks:
            x = block(
                x,
                encoder_outputs,
                decoder_padding_mask=target_mask,
                encoder_padding_mask=source_mask,
                training=training,
            )
        return ops.cast(self.output_projection(x), "float32")

    def call(self, inputs, training=False):
        encoded = self.encode(inputs["source"], training=training)
        return self.decode(
            inputs["target_in"],
            encoded["encoder_outputs"],
            encoded["source_mask"],
            training=training,
        )

    def attention_weights(self, source, target_in):
        """Last decoder block's cross-attention, averaged over heads: `(batch, T, S)`."""
        encoded = self.encode(source)
        source_mask = ops.cast(encoded["source_mask"], "bool")
        x, target_mask = self._decoder_inputs(target_in, False)
        for block in self.decoder_blocks:
            x, _, cross_scores = block(
                x,
                encoded["encoder_outputs"],
                decoder_padding_mask=target_mask,
                encoder_padding_mask=source_mask,
                return_attention_scores=True,
            )  # cross_scores: (batch, heads, T, S)
        return ops.mean(cross_scores, axis=1)

    def generate(
        self,
        source,
        start_token_id,
        end_token_id,
        max_length,
        beam_size=1,
        length_penalty_alpha=0.0,
        use_cache=True,
    ):
        """Translates source ids with `kerasdl.decoding` (greedy when `beam_size=1`).

        `use_cache=True` decodes incrementally (one decoder step per token, with
        the blocks' key/value caches); `False` reruns the decoder over the whole
        output buffer at every step. Both return the same tokens.

        Returns int32 `(batch, max_length)`: start token, generated ids, end token,
        then padding (0).
        """
        encoded = self.encode(source)
        if use_cache:
            next_token_fn, cache = self._cached_decoding(encoded, max_length)
        else:
            cache = encoded

            def next_token_fn(tokens, cache, step):
                logits = self.decode(
                    tokens, cache["encoder_outputs"], cache["source_mask"]
                )
                return ops.take(logits, step - 1, axis=1), cache  # (rows, V)

        return generate_tokens(
            next_token_fn,
            cache,
            source,
            start_token_id,
            end_token_id,
            max_length,
            beam_size,
            length_penalty_alpha,
        )

    def _cached_decoding(self, encoded, max_length):
        """`(next_token_fn, cache)` that run the decoder on one new token per step."""
        encoder_outputs = encoded["encoder_outputs"]  # (batch, S, d)
        batch = ops.shape(encoder_outputs)[0]
        for block in self.decoder_blocks:
            if not block.built:  # a model that has only generated so far
                block.build((None, None, self.hidden_dim), encoder_outputs.shape)
        cache = {
            "source_mask": encoded["source_mask"],
            "cross_attention": [
                block.cross_attention_cache(encoder_outputs)
                for block in self.decoder_blocks
            ],
            "self_attention": [
                block.initial_self_attention_cache(batch, max_length)
                for block in self.decoder_blocks
            ],
        }

        def next_token_fn(tokens, cache, step):
            index = step - 1  # the newest known token, the one fed in
            newest = ops.expand_dims(ops.take(tokens, index, axis=1), 1)  # (rows, 1)
            x = self._embed(self.target_embedding, newest, False, start_index=index)
            source_mask = ops.cast(cache["source_mask"], "bool")
            self_attention = []
            for block, block_cache, cross_cache in zip(
                self.decoder_blocks, cache["self_attention"], cache["cross_attention"]
            ):
                x, block_cache = block(
                    x,
                    self_attention_cache=block_cache,
                    cache_index=index,
                    cross_attention_cache=cross_cache,
                    encoder_padding_mask=source_mask,
                )
                self_attention.append(block_cache)
            logits = ops.cast(self.output_projection(x[:, 0]), "float32")  # (rows, V)
            return logits, {**cache, "self_attention": self_attention}

        return next_token_fn, cache

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "source_vocabulary_size": self.source_vocabulary_size,
                "target_vocabulary_size": self.target_vocabulary_size,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
            }
        )
        return config
