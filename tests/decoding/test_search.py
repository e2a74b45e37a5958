import itertools

import keras
import numpy as np
import pytest

from kerasdl.decoding import beam_search, greedy_search, length_penalty, tile_for_beams

PAD, EOS = 0, 3
NUM_CODES = 97


def prefix_code(tokens, step):
    """A hash of the whole prefix tokens[:step] (positions >= step are PAD = 0)."""
    weights = (np.arange(tokens.shape[-1]) * 5 + 1) ** 2
    return (tokens[..., :step] * weights[:step]).sum(-1) % NUM_CODES


def random_table(seed, vocab=4):
    """Fixed random next-token logits for each prefix code; PAD never generated."""
    logits = np.random.default_rng(seed).normal(size=(NUM_CODES, vocab)) * 2
    logits[:, PAD] = -1e9
    return logits.astype("float32")


def table_fn(table):
    """next_token_fn whose distribution depends on the whole prefix."""
    weights = ((np.arange(64) * 5 + 1) ** 2).astype("int32")

    def fn(tokens, cache, step):
        length = tokens.shape[-1]
        code = keras.ops.sum(tokens * weights[:length], axis=-1) % NUM_CODES
        return keras.ops.take(table, code, axis=0), cache

    return fn


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def exhaustive_best(table, prompt, max_length, alpha=0.0, kind="gnmt"):
    """Enumerates every completion of `prompt`; returns the best (tokens, log_prob)."""
    log_probs = log_softmax(table.astype("float64"))
    vocab = table.shape[-1]
    best = (None, -np.inf, -np.inf)
    steps = max_length - len(prompt)
    for completion in itertools.product(range(1, vocab), repeat=steps):
        if EOS in completion:  # cut after the first EOS
            completion = completion[: completion.index(EOS) + 1]
        tokens = np.zeros(max_length, int)
        tokens[: len(prompt)] = prompt
        total = 0.0
        for i, token in enumerate(completion):
            step = len(prompt) + i
            total += log_probs[prefix_code(tokens, step), token]
            tokens[step] = token
        lp = (
            ((5 + len(completion)) / 6) ** alpha
            if kind == "gnmt"
            else len(completion) ** alpha
        )
        if total / lp > best[2] + 1e-9:
            best = (tokens, total, total / lp)
    return best[0], best[1]


def test_length_penalty_formulas():
    lengths = np.array([1, 4, 10])
    np.testing.assert_allclose(
        length_penalty(lengths, 0.6), ((5 + lengths) / 6) ** 0.6, rtol=1e-6
    )
    np.testing.assert_allclose(
        length_penalty(lengths, 0.6, "simple"), lengths**0.6, rtol=1e-6
    )
    np.testing.assert_allclose(length_penalty(lengths, 0.0), 1.0)


@pytest.mark.parametrize("seed", range(5))
def test_beam_size_one_equals_greedy(seed):
    fn = table_fn(random_table(seed))
    prompt = np.array([[1, 2], [2, 2], [1, 1]])
    greedy_tokens, greedy_log_probs = greedy_search(fn, prompt, 7, end_token_id=EOS)
    beam_tokens, beam_log_probs = beam_search(
        fn, prompt, 7, beam_size=1, end_token_id=EOS
    )
    np.testing.assert_array_equal(beam_tokens, greedy_tokens)
    np.testing.assert_allclose(beam_log_probs, greedy_log_probs, atol=1e-5)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("alpha,kind", [(0.0, "gnmt"), (0.7, "gnmt"), (1.0, "simple")])
def test_wide_beam_finds_the_exhaustive_optimum(seed, alpha, kind):
    table = random_table(seed)
    prompt, max_length = [1], 5  # 4 generated tokens over {1, 2, EOS}: 3**4 completions
    expected_tokens, expected_log_prob = exhaustive_best(
        table, prompt, max_length, alpha, kind
    )
    tokens, log_prob = beam_search(
        table_fn(table),
        np.array([prompt]),
        max_length,
        beam_size=81,
        end_token_id=EOS,
        length_penalty_alpha=alpha,
        length_penalty_type=kind,
    )
    np.testing.assert_array_equal(tokens[0], expected_tokens)
    np.testing.assert_allclose(log_prob[0], expected_log_prob, atol=1e-4)


@pytest.mark.parametrize("seed", range(10))
def test_beam_never_below_greedy_where_that_is_guaranteed(seed):
    """Beam >= greedy holds for two generated tokens (greedy's first token is in
    every beam, and the final top-k sees all its continuations) and for a beam
    wide enough to be exhaustive; see the counterexample below for longer outputs."""
    fn = table_fn(random_table(100 + seed))
    prompt = np.array([[1], [2]])
    _, greedy_two = greedy_search(fn, prompt, 3, end_token_id=EOS)
    for beam_size in (2, 3):
        _, beam_two = beam_search(fn, prompt, 3, beam_size=beam_size, end_token_id=EOS)
        assert np.all(keras.ops.convert_to_numpy(beam_two) >= greedy_two - 1e-5)
    _, greedy_long = greedy_search(fn, prompt, 5, end_token_id=EOS)
    _, beam_long = beam_search(fn, prompt, 5, beam_size=81, end_token_id=EOS)
    assert np.all(keras.ops.convert_to_numpy(beam_long) >= greedy_long - 1e-5)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the callback looks prefixes up in Python, which only eager TensorFlow's "
    "loop runs; JAX traces the loop",
)
def test_narrow_beam_can_end_below_greedy():
    """Beam search is a heuristic, not a bound: probabilities (per step)
    step 1: A .40, B .35, C .25; after A: A .34, B .33, C .33; after B: A .5, B .5;
    after AA: A 1. Greedy takes AAA = .136; a 2-beam keeps {A, B}, then {BA, BB}
    (.175 each) and drops AA, ending at .0595."""
    a, b, c = 1, 2, 3
    probs = {
        (): [0.40, 0.35, 0.25],
        (a,): [0.34, 0.33, 0.33],
        (b,): [0.5, 0.5, 1e-9],
        (c,): [1 / 3] * 3,
        (a, a): [1, 1e-9, 1e-9],
    }

    def fn(tokens, cache, step):
        rows = []
        for row in keras.ops.convert_to_numpy(tokens):
            prefix = tuple(int(t) for t in row[1 : int(step)])
            rows.append([1e-12] + probs.get(prefix, [0.34, 0.33, 0.33]))
        return np.log(np.array(rows, "float32")), cache

    _, greedy = greedy_search(fn, np.array([9]), 4)
    _, beam = beam_search(fn, np.array([9]), 4, beam_size=2)
    np.testing.assert_allclose(np.exp(greedy), [0.136], rtol=1e-3)
    np.testing.assert_allclose(np.exp(beam), [0.0595], rtol=1e-3)


def test_finished_beams_are_kept_and_padded():
    fn = table_fn(random_table(7))
    tokens, log_probs = beam_search(
        fn,
        np.array([[1], [2]]),
        6,
        beam_size=4,
        end_token_id=EOS,
        return_all_beams=True,
    )
    tokens = keras.ops.convert_to_numpy(tokens)
    assert tokens.shape == (2, 4, 6) and log_probs.shape == (2, 4)
    assert np.all(np.diff(keras.ops.convert_to_numpy(log_probs), axis=1) <= 1e-6)
    for row in tokens.reshape(-1, 6):
        if EOS in row.tolist():
            assert np.all(row[row.tolist().index(EOS) + 1 :] == PAD)
    assert any(EOS in row for row in tokens.reshape(-1, 6).tolist())


def test_cache_rows_follow_their_beams():
    """A stateful callback (prefix code kept in the cache) gives the same result
    as the stateless one, so beam re-ranking reorders the cache correctly."""
    table = random_table(3)
    weights = ((np.arange(64) * 5 + 1) ** 2).astype("int32")

    def stateful(tokens, cache, step):
        previous = keras.ops.take(tokens, step - 1, axis=1)
        weight = keras.ops.take(weights, step - 1)
        code = (cache["code"] + previous * weight) % NUM_CODES
        return keras.ops.take(table, code, axis=0), {"code": code}

    prompt = np.array([[1], [2], [1]])
    cache = {"code": tile_for_beams(np.zeros((3,), "int32"), 5)}
    expected = beam_search(table_fn(table), prompt, 6, beam_size=5, end_token_id=EOS)
    got = beam_search(stateful, prompt, 6, beam_size=5, end_token_id=EOS, cache=cache)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], atol=1e-5)


def test_tile_for_beams_repeats_rows_in_place():
    x = {"a": np.arange(6).reshape(2, 3), "b": np.array([1.0, 2.0])}
    tiled = tile_for_beams(x, 2)
    np.testing.assert_array_equal(
        tiled["a"], [[0, 1, 2], [0, 1, 2], [3, 4, 5], [3, 4, 5]]
    )
    np.testing.assert_array_equal(tiled["b"], [1, 1, 2, 2])


def test_rejects_bad_arguments():
    fn = table_fn(random_table(0))
    with pytest.raises(ValueError, match="beam_size=0"):
        beam_search(fn, np.array([1]), 5, beam_size=0)
    with pytest.raises(ValueError, match="max_length=3"):
        greedy_search(fn, np.array([[1, 2, 3]]), 3)
    with pytest.raises(ValueError, match="length_penalty_type='log'"):
        beam_search(fn, np.array([1]), 5, length_penalty_type="log")
    with pytest.raises(ValueError, match="must differ"):
        greedy_search(fn, np.array([1]), 5, end_token_id=0, pad_token_id=0)
