"""`sample_next` and `sample`: temperature, top-k and top-p sampling (TF and JAX)."""

import keras
import numpy as np
import pytest
from keras import ops

from kerasdl.decoding import greedy_search, sample, sample_next

PAD, EOS = 0, 3
PROBS = np.array([0.5, 0.3, 0.1, 0.06, 0.04])  # a toy 5-token distribution
CHI2_999_4DOF = 18.47  # 0.999 quantile of chi-square with 4 degrees of freedom


def compile_fn(fn):
    """`fn` as a graph: `tf.function` on TensorFlow, `jax.jit` on JAX."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    pytest.skip(f"no graph mode tested for {keras.backend.backend()}")


def tiled_logits(probs, rows):
    return ops.convert_to_tensor(np.tile(np.log(probs), (rows, 1)).astype("float32"))


def draws(rows=2000, seed=0, **kwargs):
    return ops.convert_to_numpy(
        sample_next(tiled_logits(PROBS, rows), seed=seed, **kwargs)
    )


def chi_square(tokens, probs):
    counts = np.bincount(tokens, minlength=len(probs))
    expected = len(tokens) * np.asarray(probs)
    return ((counts - expected) ** 2 / expected).sum()


def table_fn(seed, vocab=6):
    """next_token_fn whose logits depend on the previous token (PAD never drawn)."""
    table = np.random.default_rng(seed).normal(size=(vocab, vocab)) * 2
    table[:, PAD] = -1e9
    table = table.astype("float32")

    def fn(tokens, cache, step):
        at_previous = ops.equal(ops.arange(tokens.shape[-1], dtype="int32"), step - 1)
        previous = ops.sum(ops.where(at_previous, tokens, 0), axis=-1)  # (batch,)
        return ops.take(table, previous, axis=0), cache

    fn.table = table  # for the tests' own NumPy computation
    return fn


def test_top_k_one_is_greedy():
    logits = np.random.default_rng(0).normal(size=(16, 50)).astype("float32")
    for seed, temperature in [(0, 1.0), (1, 0.3), (2, 5.0)]:
        tokens = sample_next(logits, top_k=1, temperature=temperature, seed=seed)
        np.testing.assert_array_equal(ops.convert_to_numpy(tokens), logits.argmax(-1))


def test_draws_follow_the_model_distribution():
    tokens = draws(rows=20000, seed=1, top_p=1.0, temperature=1.0)
    assert tokens.dtype == np.int32 and tokens.shape == (20000,)
    assert chi_square(tokens, PROBS) < CHI2_999_4DOF


def test_temperature_and_top_k_renormalize():
    # temperature 2 flattens: p ** (1/2), renormalized over the top 3 tokens.
    tempered = np.sqrt(PROBS[:3]) / np.sqrt(PROBS[:3]).sum()
    tokens = draws(rows=20000, seed=2, temperature=2.0, top_k=3)
    assert tokens.max() <= 2
    statistic = chi_square(tokens, tempered)
    assert statistic < 13.82  # 0.999 quantile, 2 degrees of freedom


@pytest.mark.parametrize(
    "kwargs, allowed",
    [
        ({"top_k": 2}, {0, 1}),
        ({"top_p": 0.45}, {0}),
        ({"top_p": 0.85}, {0, 1, 2}),  # 0.5 + 0.3 < 0.85: the third is needed
        # top-k first: over the top 3 (0.556, 0.333, 0.111) 0.85 needs two.
        ({"top_k": 3, "top_p": 0.85}, {0, 1}),
        ({"top_k": 99}, {0, 1, 2, 3, 4}),  # more than the vocabulary: all
    ],
)
def test_only_tokens_of_the_kept_set_appear(kwargs, allowed):
    tokens = draws(seed=3, temperature=1.0, **kwargs)
    assert set(np.unique(tokens).tolist()) == allowed


def test_removed_tokens_never_appear_even_when_likely_masked_by_minus_1e9():
    # Logits far below the top (like generate_tokens' -1e9 padding mask),
    # with a temperature that scales them further down.
    logits = np.array([[-1e9, 0.0, 0.1, -1e9]] * 1000, "float32")
    tokens = ops.convert_to_numpy(sample_next(logits, temperature=0.5, top_k=3, seed=4))
    assert set(np.unique(tokens).tolist()) == {1, 2}


def test_seeded_reproducibility():
    np.testing.assert_array_equal(draws(seed=7), draws(seed=7))
    assert (draws(seed=7) != draws(seed=8)).any()
    logits = tiled_logits(PROBS, 2000)
    first = [sample_next(logits, seed=keras.random.SeedGenerator(5)) for _ in range(2)]
    np.testing.assert_array_equal(*map(ops.convert_to_numpy, first))
    generator = keras.random.SeedGenerator(5)
    a, b = (ops.convert_to_numpy(sample_next(logits, seed=generator)) for _ in range(2))
    assert (a != b).any()  # a generator moves on between calls


def test_sample_next_in_a_graph_matches_eager():
    logits = tiled_logits(PROBS, 2000)

    def fn(logits):
        return sample_next(logits, temperature=0.8, top_k=4, top_p=0.9, seed=11)

    eager = ops.convert_to_numpy(fn(logits))
    graph = ops.convert_to_numpy(compile_fn(fn)(logits))
    np.testing.assert_array_equal(graph, eager)


def test_sample_with_top_k_one_equals_greedy_search():
    fn = table_fn(0)
    start = np.array([1, 2, 4, 5], "int32")
    expected = greedy_search(fn, start, 7, end_token_id=EOS)
    got = sample(fn, start, 7, end_token_id=EOS, top_k=1, seed=0)
    np.testing.assert_array_equal(
        *(ops.convert_to_numpy(t[0]) for t in (got, expected))
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(got[1]), ops.convert_to_numpy(expected[1]), rtol=1e-5
    )


def test_sample_pads_after_end_token_and_sums_log_probs():
    fn = table_fn(1)
    tokens, log_probs = sample(
        fn, np.ones((64,), "int32"), 8, end_token_id=EOS, top_p=0.95, seed=3
    )
    tokens, log_probs = ops.convert_to_numpy(tokens), ops.convert_to_numpy(log_probs)
    assert tokens.shape == (64, 8) and log_probs.shape == (64,)
    assert (tokens[:, 0] == 1).all()
    ended = 0
    for row, total in zip(tokens, log_probs):
        generated = row[1:]
        if EOS in generated:
            ended += 1
            end = int(np.argmax(generated == EOS))
            assert (generated[end + 1 :] == PAD).all(), row
            generated = generated[: end + 1]
        assert (generated != PAD).all(), row
        # Summed log-probability of the generated tokens under the model.
        expected = 0.0
        for step in range(1, 1 + len(generated)):
            scores = fn.table[row[step - 1]].astype("float64")
            scores = scores - scores.max()
            expected += scores[row[step]] - np.log(np.exp(scores).sum())
        np.testing.assert_allclose(total, expected, rtol=1e-4, atol=1e-4)
    assert 0 < ended < 64  # both stopped and unstopped rows are checked


def test_sample_is_seeded_and_runs_in_a_graph():
    fn = table_fn(2)
    start = np.ones((32, 2), "int32")

    def decode(start):
        return sample(fn, start, 9, end_token_id=EOS, temperature=1.3, top_k=4, seed=21)

    eager = [ops.convert_to_numpy(t) for t in decode(start)]
    again = [ops.convert_to_numpy(t) for t in decode(start)]
    graph = [ops.convert_to_numpy(t) for t in compile_fn(decode)(start)]
    np.testing.assert_array_equal(eager[0], again[0])
    np.testing.assert_array_equal(graph[0], eager[0])
    np.testing.assert_allclose(graph[1], eager[1], rtol=1e-5)
    assert len({tuple(row) for row in eager[0]}) > 1  # rows draw independently


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": 0.0}, "greedy_search"),
        ({"temperature": -1.0}, "temperature=-1.0"),
        ({"top_k": 0}, "top_k=0"),
        ({"top_k": 2.5}, "top_k=2.5"),
        ({"top_p": 0.0}, r"top_p=0\.0"),
        ({"top_p": 1.5}, r"top_p=1\.5"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_next(tiled_logits(PROBS, 2), seed=0, **kwargs)
    with pytest.raises(ValueError, match=match):
        sample(table_fn(0), np.ones((2,), "int32"), 4, seed=0, **kwargs)


def test_rejects_logits_of_the_wrong_rank():
    with pytest.raises(ValueError, match="batch, vocabulary_size"):
        sample_next(np.zeros((5,), "float32"), seed=0)


def test_tf_function_with_unknown_batch_and_a_seed_generator():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow input signatures")
    import tensorflow as tf

    fn = table_fn(3)
    generator = keras.random.SeedGenerator(9)

    @tf.function(input_signature=[tf.TensorSpec((None, 1), tf.int32)])
    def decode(start):
        return sample(fn, start, 6, end_token_id=EOS, top_p=0.9, seed=generator)

    first, _ = decode(tf.ones((16, 1), tf.int32))
    second, _ = decode(tf.ones((5, 1), tf.int32))
    assert first.shape == (16, 6) and second.shape == (5, 6)
    assert (first.numpy()[:, 0] == 1).all() and (first.numpy()[:, 1:] != PAD).any()


def test_edge_uniform_values_never_pick_an_impossible_token():
    from kerasdl.decoding.sampling import _draw

    # Impossible tokens (probability exactly 0) first and last, unsorted.
    logits = ops.convert_to_tensor(np.array([[-1e9, 0.0, 1.0, -1e9]] * 4, "float32"))
    uniform = ops.convert_to_tensor(np.array([0.0, 0.5, 1 - 2**-24, 1.0], "float32"))
    tokens = ops.convert_to_numpy(_draw(logits, None, uniform))
    np.testing.assert_array_equal(tokens, [1, 2, 2, 2])
