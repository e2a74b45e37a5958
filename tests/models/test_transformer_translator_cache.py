"""TransformerTranslator decoding through the decoders' key/value caches."""

import keras
import numpy as np
import pytest
from keras import ops

from kerasdl.models import TransformerTranslator
from kerasdl.testing import compiled

START, END = 2, 3
RNG = np.random.default_rng(0)
SOURCE = RNG.integers(4, 12, size=(4, 6)).astype("int32")
SOURCE[0, 3:] = 0  # a padded sentence


def random_translator():
    keras.utils.set_random_seed(0)
    model = TransformerTranslator(
        12, 12, hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32
    )
    model({"source": SOURCE, "target_in": SOURCE}, training=False)
    return model


def test_each_cached_step_gives_the_logits_of_the_whole_prefix():
    model = random_translator()
    buffer = RNG.integers(4, 12, size=(4, 8)).astype("int32")
    buffer[:, 0] = START
    encoded = model.encode(SOURCE)
    expected = ops.convert_to_numpy(
        model.decode(buffer, encoded["encoder_outputs"], encoded["source_mask"])
    )
    next_token_fn, cache = model._cached_decoding(encoded, max_length=8)
    for step in range(1, 8):
        logits, cache = next_token_fn(buffer, cache, np.int32(step))
        np.testing.assert_allclose(
            ops.convert_to_numpy(logits), expected[:, step - 1], atol=1e-4
        )


@pytest.mark.parametrize("beam_size", [1, 3])
def test_cached_generate_returns_the_uncached_tokens_when_compiled(beam_size):
    model = random_translator()

    def generate(source, use_cache):
        return model.generate(
            source, START, END, 8, beam_size, 0.6, use_cache=use_cache
        )

    cached = compiled(lambda source: generate(source, True))(SOURCE)
    uncached = compiled(lambda source: generate(source, False))(SOURCE)
    np.testing.assert_array_equal(ops.convert_to_numpy(cached), uncached)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(cached), generate(SOURCE, True)
    )  # = eager


def reversed_pairs(rng, count):
    """Sources of 2-5 tokens (ids 4-11) and their reversal, `[start] ... [end]`."""
    source = np.zeros((count, 6), "int32")
    target_in = np.zeros((count, 7), "int32")
    target_out = np.zeros((count, 7), "int32")
    for row in range(count):
        tokens = rng.integers(4, 12, rng.integers(2, 6))
        target = np.concatenate([[START], tokens[::-1], [END]])
        source[row, : len(tokens)] = tokens
        target_in[row, : len(target) - 1] = target[:-1]
        target_out[row, : len(target) - 1] = target[1:]
    return source, target_in, target_out


@pytest.mark.large
def test_trained_translator_cached_and_uncached_translations_are_identical():
    # A translator that has learned to reverse its input emits the end token at
    # different steps: the searches see realistic, varied outputs.
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    source, target_in, target_out = reversed_pairs(rng, 2048)
    model = TransformerTranslator(
        12, 12, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32, dropout=0
    )
    model.compile(
        keras.optimizers.Adam(5e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        {"source": source, "target_in": target_in},
        target_out,
        sample_weight=(target_out > 0).astype("float32"),
        batch_size=64,
        epochs=3,
        verbose=0,
    )
    test_source, _, test_target = reversed_pairs(rng, 16)
    for beam_size in (1, 4):
        cached = ops.convert_to_numpy(
            model.generate(test_source, START, END, 8, beam_size, 0.6)
        )
        uncached = model.generate(
            test_source, START, END, 8, beam_size, 0.6, use_cache=False
        )
        np.testing.assert_array_equal(cached, uncached)
        lengths = (cached > 0).sum(axis=1)
        assert len(set(lengths)) >= 3  # outputs end at different steps
        assert (cached[:, 1:8] == test_target).all(axis=1).mean() > 0.5  # it learned
