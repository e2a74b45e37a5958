"""Greedy and beam search inside `tf.function` and an exported SavedModel (TensorFlow only)."""

import keras
import numpy as np
import tensorflow as tf
from test_search import EOS, random_table, table_fn

from kerasdl.decoding import beam_search, greedy_search, tile_for_beams
from kerasdl.layers import TransformerDecoder, TransformerEncoder


def test_tf_function_matches_eager():
    fn = table_fn(random_table(11))
    prompt = np.array([[1], [2], [1]], "int32")

    @tf.function(input_signature=[tf.TensorSpec((None, 1), tf.int32)])
    def decode(start):
        greedy = greedy_search(fn, start, 6, end_token_id=EOS)
        beam = beam_search(
            fn, start, 6, beam_size=3, end_token_id=EOS, length_penalty_alpha=0.6
        )
        return greedy + beam

    graph = decode(prompt)
    eager = greedy_search(fn, prompt, 6, end_token_id=EOS) + beam_search(
        fn, prompt, 6, beam_size=3, end_token_id=EOS, length_penalty_alpha=0.6
    )
    for g, e in zip(graph, eager):
        np.testing.assert_allclose(g, e, atol=1e-5)


class TinyTranslator(tf.Module):
    """An untrained Transformer encoder-decoder exposing `encode`,
    `next_token_fn` and an exported beam-search `translate`."""

    def __init__(self, vocab=12, dim=16, beam_size=3):
        super().__init__()
        self.beam_size = beam_size
        self.encoder_embedding = keras.layers.Embedding(vocab, dim, mask_zero=True)
        self.decoder_embedding = keras.layers.Embedding(vocab, dim)
        self.encoder = TransformerEncoder(32, 2)
        self.decoder = TransformerDecoder(32, 2)
        self.head = keras.layers.Dense(vocab)
        self.translate(np.ones((1, 5), "int32"))  # builds the layers

    def encode(self, source):
        return self.encoder(self.encoder_embedding(source))

    def next_token_fn(self, tokens, cache, step):
        # Recompute the causal decoder on the whole buffer, read position step-1.
        x = self.decoder(
            self.decoder_embedding(tokens),
            cache["encoder_outputs"],
            encoder_padding_mask=cache["source_mask"],
        )
        return keras.ops.take(self.head(x), step - 1, axis=1), cache

    def cache_for(self, source, beams):
        cache = {"encoder_outputs": self.encode(source), "source_mask": source != 0}
        return tile_for_beams(cache, beams)

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32)])
    def translate(self, source):
        start = tf.fill([tf.shape(source)[0]], 1)
        return beam_search(
            self.next_token_fn,
            start,
            8,
            beam_size=self.beam_size,
            end_token_id=2,
            cache=self.cache_for(source, self.beam_size),
            length_penalty_alpha=0.6,
        )


def test_transformer_decoding_eager_graph_and_saved_model(tmp_path):
    translator = TinyTranslator()
    source = np.array([[4, 5, 6, 0, 0], [7, 8, 9, 10, 11]], "int32")
    graph = translator.translate(source)
    cache = translator.cache_for(source, 3)
    eager = beam_search(
        translator.next_token_fn,
        np.array([1, 1]),
        8,
        beam_size=3,
        end_token_id=2,
        cache=cache,
        length_penalty_alpha=0.6,
    )
    np.testing.assert_array_equal(graph[0], eager[0])
    np.testing.assert_allclose(graph[1], eager[1], atol=1e-4)

    tf.saved_model.save(translator, str(tmp_path / "translator"))
    restored = tf.saved_model.load(str(tmp_path / "translator"))
    reloaded = restored.translate(tf.constant(source))
    np.testing.assert_array_equal(reloaded[0], graph[0])
    np.testing.assert_allclose(reloaded[1], graph[1], atol=1e-5)


def test_transformer_beam_one_equals_greedy_and_padding_is_ignored():
    translator = TinyTranslator()
    source = np.array([[4, 5, 6, 0, 0]], "int32")
    cache = translator.cache_for(source, 1)
    greedy = greedy_search(
        translator.next_token_fn, np.array([1]), 7, end_token_id=2, cache=cache
    )
    beam = beam_search(
        translator.next_token_fn,
        np.array([1]),
        7,
        beam_size=1,
        end_token_id=2,
        cache=cache,
    )
    np.testing.assert_array_equal(beam[0], greedy[0])
    short = np.array([[4, 5, 6]], "int32")
    unpadded = greedy_search(
        translator.next_token_fn,
        np.array([1]),
        7,
        end_token_id=2,
        cache=translator.cache_for(short, 1),
    )
    np.testing.assert_array_equal(unpadded[0], greedy[0])
