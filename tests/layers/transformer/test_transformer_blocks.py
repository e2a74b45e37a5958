"""TransformerEncoder and TransformerDecoder: contract, structure and mask properties."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kerasdl.layers import TransformerDecoder, TransformerEncoder
from kerasdl.testing import compiled, run_layer_test

BLOCKS = [TransformerEncoder, TransformerDecoder]


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("normalize_first", [False, True])
def test_layer_contract(block, normalize_first):
    # Decoder-only use for the decoder (the harness passes one tensor):
    # self-attention 8 weights + 2 norms x2 + 2 dense x2 = 16.
    run_layer_test(
        block,
        {
            "intermediate_dim": 16,
            "num_heads": 2,
            "dropout": 0.1,
            "normalize_first": normalize_first,
            "activation": "gelu",
        },
        input_shape=(2, 5, 8),
        expected_output_shape=(2, 5, 8),
        expected_num_trainable_weights=16,
        atol=1e-4,
    )


def test_encoder_is_post_norm_add_and_norm_by_default():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 8)).astype("float32")
    for normalize_first in (False, True):
        block = TransformerEncoder(16, 2, normalize_first=normalize_first)
        y = block(x)

        def ffn(h, block=block):
            return block.feedforward_output(block.feedforward_intermediate(h))

        if normalize_first:
            h = block.self_attention_norm(x)
            h = x + block.self_attention(h, h)
            expected = h + ffn(block.feedforward_norm(h))
        else:
            h = block.self_attention_norm(x + block.self_attention(x, x))
            expected = block.feedforward_norm(h + ffn(h))
        np.testing.assert_allclose(y, expected, atol=1e-5)


def test_decoder_with_cross_attention_weights_and_structure():
    rng = np.random.default_rng(1)
    target = rng.normal(size=(2, 4, 8)).astype("float32")
    source = rng.normal(size=(2, 6, 12)).astype("float32")
    block = TransformerDecoder(16, 2)
    y = block(target, source)
    assert y.shape == (2, 4, 8)
    assert len(block.trainable_weights) == 16 + 8 + 2

    def ffn(h):
        return block.feedforward_output(block.feedforward_intermediate(h))

    h = block.self_attention_norm(
        target + block.self_attention(target, target, use_causal_mask=True)
    )
    h = block.cross_attention_norm(h + block.cross_attention(h, source))
    np.testing.assert_allclose(y, block.feedforward_norm(h + ffn(h)), atol=1e-5)
    with pytest.raises(ValueError, match="built with `encoder_sequence`"):
        block(target)


@settings(max_examples=12, deadline=None)
@given(
    length=st.integers(2, 7),
    position=st.integers(0, 6),
    normalize_first=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_decoder_outputs_never_see_future_tokens(
    length, position, normalize_first, seed
):
    position = position % (length - 1)
    rng = np.random.default_rng(seed)
    block = TransformerDecoder(16, 2, normalize_first=normalize_first)
    target = rng.normal(size=(1, length, 8)).astype("float32")
    source = rng.normal(size=(1, 3, 8)).astype("float32")
    changed = target.copy()
    changed[:, position + 1 :] = rng.normal(size=changed[:, position + 1 :].shape) * 10
    before = block(target, source)
    after = block(changed, source)
    np.testing.assert_allclose(
        before[:, : position + 1], after[:, : position + 1], atol=1e-4
    )


@settings(max_examples=12, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 6), min_size=2, max_size=2),
    normalize_first=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_padded_tokens_never_change_unpadded_outputs(lengths, normalize_first, seed):
    """The silent-mask bug class of keras-team/keras#23038, checked end to end."""
    target_length, source_length = lengths
    rng = np.random.default_rng(seed)
    pad = 3
    target_ids = rng.integers(1, 20, size=(1, target_length + pad))
    source_ids = rng.integers(1, 20, size=(1, source_length + pad))
    target_ids[:, target_length:] = 0
    source_ids[:, source_length:] = 0

    source_tokens = keras.Input((None,), dtype="int32")
    target_tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, 8, mask_zero=True)(source_tokens)
    encoded = TransformerEncoder(16, 2, normalize_first=normalize_first)(x)
    encoded = TransformerEncoder(16, 2, normalize_first=normalize_first)(encoded)
    y = keras.layers.Embedding(20, 8, mask_zero=True)(target_tokens)
    y = TransformerDecoder(16, 2, normalize_first=normalize_first)(y, encoded)
    model = keras.Model([source_tokens, target_tokens], y)

    padded = model([source_ids, target_ids])
    unpadded = model([source_ids[:, :source_length], target_ids[:, :target_length]])
    np.testing.assert_allclose(padded[:, :target_length], unpadded, atol=1e-4)


def test_explicit_padding_mask_equals_keras_mask():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    block = TransformerEncoder(16, 2)
    explicit = block(x, padding_mask=mask)
    changed = x.copy()
    changed[0, 3:] = 42.0
    np.testing.assert_allclose(
        block(changed, padding_mask=mask)[0, :3], explicit[0, :3], atol=1e-5
    )


def test_mask_propagates_through_encoder():
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 8, mask_zero=True)(tokens)
    y = TransformerEncoder(16, 2)(x)
    assert getattr(y, "_keras_mask", None) is not None


@pytest.mark.parametrize("normalize_first", [False, True])
def test_mixed_precision_encoder_decoder(normalize_first):
    rng = np.random.default_rng(3)
    source = rng.normal(size=(2, 6, 8)).astype("float32") * 50
    target = rng.normal(size=(2, 4, 8)).astype("float32") * 50
    kwargs = {
        "intermediate_dim": 16,
        "num_heads": 2,
        "normalize_first": normalize_first,
        "dtype": "mixed_float16",
    }
    encoded = TransformerEncoder(**kwargs)(source)
    decoded = TransformerDecoder(**kwargs)(target, encoded)
    for out in (encoded, decoded):
        assert keras.backend.standardize_dtype(out.dtype) == "float16"
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(out).astype("float32")))


def _seq2seq(vocab=20, dim=16, **block_kwargs):
    source = keras.Input((None,), dtype="int32", name="source")
    target = keras.Input((None,), dtype="int32", name="target")
    x = keras.layers.Embedding(vocab, dim, mask_zero=True)(source)
    x = TransformerEncoder(32, 2, dropout=0.1, **block_kwargs)(x)
    y = keras.layers.Embedding(vocab, dim, mask_zero=True)(target)
    y = TransformerDecoder(32, 2, dropout=0.1, **block_kwargs)(y, x)
    logits = keras.layers.Dense(vocab)(y)
    return keras.Model([source, target], logits)


def test_jit_compiled_training_step_of_blocks():
    source = keras.Input((6, 8))
    target = keras.Input((4, 8))
    encoded = TransformerEncoder(16, 2, dropout=0.1)(source)
    decoded = TransformerDecoder(16, 2, dropout=0.1)(target, encoded)
    model = keras.Model([source, target], decoded)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    rng = np.random.default_rng(0)
    data = [rng.normal(size=(4, 6, 8)), rng.normal(size=(4, 4, 8))]
    history = model.fit(data, rng.normal(size=(4, 4, 8)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.large
def test_jit_compiled_seq2seq_training_and_keras_round_trip(tmp_path):
    model = _seq2seq()
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    rng = np.random.default_rng(0)
    source = rng.integers(1, 20, size=(8, 7))
    target = rng.integers(1, 20, size=(8, 5))
    target[:, 4:] = 0
    history = model.fit([source, target], target, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "seq2seq.keras")
    reloaded = keras.saving.load_model(tmp_path / "seq2seq.keras")
    np.testing.assert_allclose(
        reloaded([source, target]), model([source, target]), atol=1e-5
    )


def test_seq2seq_keras_round_trip(tmp_path):
    model = _seq2seq(normalize_first=True)
    rng = np.random.default_rng(4)
    data = [rng.integers(0, 20, size=(2, 6)), rng.integers(0, 20, size=(2, 4))]
    model.save(tmp_path / "seq2seq.keras")
    reloaded = keras.saving.load_model(tmp_path / "seq2seq.keras")
    np.testing.assert_allclose(reloaded(data), model(data), atol=1e-5)


def test_seq2seq_tf_function_matches_eager():
    model = _seq2seq()
    rng = np.random.default_rng(1)
    source = rng.integers(0, 20, size=(2, 6))
    target = rng.integers(0, 20, size=(2, 4))
    eager = model([source, target])
    graph = compiled(lambda s, t: model([s, t]), jit_compile=True)(source, target)
    # Padded target steps (id 0) are masked out of every loss; their outputs are
    # not defined, and on JAX they differ between eager and jit.
    real = target != 0
    assert not real.all()  # the case of interest: a padded step in the batch
    np.testing.assert_allclose(
        np.asarray(graph)[real], np.asarray(eager)[real], atol=1e-5
    )


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="intermediate_dim=0"):
        TransformerEncoder(0, 2)
    with pytest.raises(ValueError, match="dropout=1.0"):
        TransformerDecoder(8, 2, dropout=1.0)
    with pytest.raises(ValueError, match="divisible by num_heads=3"):
        TransformerEncoder(8, 3)(np.ones((1, 2, 8), "float32"))


@pytest.mark.parametrize("block", BLOCKS)
def test_blocks_start_query_and_key_kernels_different(block):
    # The attention's query, key and value kernels used to share one
    # initializer object, and started identical.
    layer = block(16, 2, kernel_initializer=keras.initializers.GlorotUniform(seed=1))
    layer.build((2, 4, 8))
    query, key, value = layer.self_attention.get_weights()[0:6:2]
    assert not np.allclose(query, key) and not np.allclose(key, value)
    intermediate = keras.ops.convert_to_numpy(layer.feedforward_intermediate.kernel)
    output = keras.ops.convert_to_numpy(layer.feedforward_output.kernel)
    # Same seed and shape mirrored: equal leading values if the seed were shared.
    assert not np.allclose(intermediate.ravel()[:8], output.ravel()[:8])


@pytest.mark.parametrize("normalize_first", [False, True])
def test_encoder_returns_its_self_attention_scores(normalize_first):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    padding = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    block = TransformerEncoder(16, 2, normalize_first=normalize_first)
    y, scores = block(x, padding_mask=padding, return_attention_scores=True)
    np.testing.assert_allclose(y, block(x, padding_mask=padding), atol=1e-6)
    h = block.self_attention_norm(x) if normalize_first else x
    _, expected = block.self_attention(
        h, h, query_mask=padding, value_mask=padding, return_attention_scores=True
    )
    assert scores.shape == (2, 2, 5, 5)
    np.testing.assert_allclose(scores, expected, atol=1e-6)


def test_decoder_returns_self_and_cross_attention_scores():
    rng = np.random.default_rng(12)
    target = rng.normal(size=(2, 4, 8)).astype("float32")
    source = rng.normal(size=(2, 6, 8)).astype("float32")
    source_padding = np.array([[1, 1, 1, 1, 0, 0], [1] * 6], bool)
    block = TransformerDecoder(16, 2)
    y, self_scores, cross_scores = block(
        target,
        source,
        encoder_padding_mask=source_padding,
        return_attention_scores=True,
    )
    np.testing.assert_allclose(
        y, block(target, source, encoder_padding_mask=source_padding), atol=1e-6
    )
    self_scores = keras.ops.convert_to_numpy(self_scores)
    cross_scores = keras.ops.convert_to_numpy(cross_scores)
    assert self_scores.shape == (2, 2, 4, 4) and cross_scores.shape == (2, 2, 4, 6)
    np.testing.assert_array_equal(
        self_scores[..., np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]], 0.0
    )
    np.testing.assert_array_equal(cross_scores[0, :, :, 4:], 0.0)
    decoder_only = TransformerDecoder(16, 2)
    outputs = decoder_only(target, return_attention_scores=True)
    assert len(outputs) == 2 and outputs[1].shape == (2, 2, 4, 4)


def test_blocks_return_attention_scores_in_a_functional_model():
    target, source = keras.Input((4, 8)), keras.Input((6, 8))
    encoded, encoder_scores = TransformerEncoder(16, 2)(
        source, return_attention_scores=True
    )
    decoded, self_scores, cross_scores = TransformerDecoder(16, 2)(
        target, encoded, return_attention_scores=True
    )
    model = keras.Model(
        [target, source], [decoded, encoder_scores, self_scores, cross_scores]
    )
    rng = np.random.default_rng(13)
    outputs = model([rng.normal(size=(2, 4, 8)), rng.normal(size=(2, 6, 8))])
    assert [tuple(o.shape) for o in outputs] == [
        (2, 4, 8),
        (2, 2, 6, 6),
        (2, 2, 4, 4),
        (2, 2, 4, 6),
    ]
