"""`generate_tokens`: the translators' decoding loop."""

import numpy as np
from keras import ops

from kerasdl.decoding import generate_tokens

# Token 0 (padding) scores best, then 2, then 3 (the end token).
SCORES = np.array([[5.0, 0.0, 1.0, 0.5]], "float32")


END_NOW = np.array([[0.0, 0.0, 0.0, 9.0]], "float32")


def prefers_padding(tokens, cache, step):
    # One row per sequence (per beam under beam search).
    return ops.tile(ops.convert_to_tensor(SCORES), (ops.shape(tokens)[0], 1)), cache


def ends_at_step_two(tokens, cache, step):
    scores = ops.where(ops.equal(step, 2), END_NOW, SCORES)
    return ops.tile(scores, (ops.shape(tokens)[0], 1)), cache


def test_greedy_starts_with_start_token_and_never_emits_padding():
    tokens = generate_tokens(prefers_padding, {}, np.zeros((2, 7)), 1, 3, 5, 1, 0.6)
    np.testing.assert_array_equal(ops.convert_to_numpy(tokens), [[1, 2, 2, 2, 2]] * 2)


def test_beam_search_never_emits_padding():
    scores = np.array([[5.0, 0.0, 1.0, -20.0]], "float32")  # the end token unlikely

    def next_token_fn(tokens, cache, step):
        return ops.tile(ops.convert_to_tensor(scores), (ops.shape(tokens)[0], 1)), cache

    tokens = ops.convert_to_numpy(
        generate_tokens(next_token_fn, {}, np.zeros((2, 7)), 1, 3, 5, 3, 0.6)
    )
    assert tokens.shape == (2, 5)
    assert (tokens[:, 0] == 1).all()
    assert (tokens[:, 1:] != 0).all(), tokens


def test_end_token_stops_and_pads_the_rest():
    tokens = generate_tokens(ends_at_step_two, {}, np.zeros((2, 7)), 1, 3, 6, 1, 0.6)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(tokens), [[1, 2, 3, 0, 0, 0]] * 2
    )
