import keras
import numpy as np
import pytest

from kerasdl.layers import ScaledDotProductAttention
from kerasdl.testing import run_layer_test


def numpy_attention(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -1e9)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    if mask is not None:
        weights = np.where(mask, weights, 0.0)
    return weights @ v, weights


def test_layer_contract():
    run_layer_test(
        ScaledDotProductAttention,
        {"dropout": 0.0},
        input_shape=(2, 5, 8),
        expected_output_shape=(2, 5, 8),
        expected_num_trainable_weights=0,
        run_training_step=False,  # no weights
    )


def test_matches_numpy_for_cross_attention():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(2, 3, 4)).astype("float32")
    k = rng.normal(size=(2, 6, 4)).astype("float32")
    v = rng.normal(size=(2, 6, 5)).astype("float32")
    output, weights = ScaledDotProductAttention()(
        q, v, key=k, return_attention_scores=True
    )
    expected_output, expected_weights = numpy_attention(q, k, v)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-5)
    np.testing.assert_allclose(output, expected_output, atol=1e-5)


def test_masks_combine_with_and():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(2, 4, 4)).astype("float32")
    kv = rng.normal(size=(2, 4, 4)).astype("float32")
    value_mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    attention_mask = rng.random((2, 4, 4)) > 0.3
    attention_mask[:, :, 0] = True  # keep every row non-empty
    output, weights = ScaledDotProductAttention()(
        q,
        kv,
        value_mask=value_mask,
        attention_mask=attention_mask,
        use_causal_mask=True,
        return_attention_scores=True,
    )
    mask = value_mask[:, None, :] & attention_mask & np.tril(np.ones((4, 4), bool))
    expected_output, expected_weights = numpy_attention(q, kv, kv, mask)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-5)
    np.testing.assert_allclose(output, expected_output, atol=1e-5)


def test_reads_keras_mask_in_functional_model():
    tokens = keras.Input((None,), dtype="int32")
    embedding = keras.layers.Embedding(10, 4, mask_zero=True)
    x = embedding(tokens)
    model = keras.Model(tokens, ScaledDotProductAttention()(x, x))
    padded = model(np.array([[1, 2, 3, 0, 0]]))
    # Padding must act as if the sequence were 3 tokens long.
    unpadded = model(np.array([[1, 2, 3]]))
    np.testing.assert_allclose(padded[:, :3], unpadded, atol=1e-6)


def test_fully_masked_row_gives_zero_weights():
    x = np.ones((1, 2, 4), "float32")
    _, weights = ScaledDotProductAttention()(
        x, x, value_mask=np.zeros((1, 2), bool), return_attention_scores=True
    )
    np.testing.assert_array_equal(weights, 0.0)


def test_dropout_only_in_training():
    x = np.random.default_rng(0).normal(size=(2, 6, 4)).astype("float32")
    layer = ScaledDotProductAttention(dropout=0.5, seed=0)
    np.testing.assert_allclose(layer(x, x), layer(x, x, training=False))
    assert not np.allclose(layer(x, x, training=True), layer(x, x))


def test_softmax_in_float32_under_mixed_precision():
    q = np.full((1, 1, 4), 60.0, "float32")  # scores 60*60*4/2 overflow float16
    k = np.stack([np.full(4, 60.0), np.full(4, 59.0)])[None].astype("float32")
    layer = ScaledDotProductAttention(dtype="mixed_float16")
    output, weights = layer(q, k, return_attention_scores=True)
    assert keras.backend.standardize_dtype(output.dtype) == "float16"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(weights)))


def test_mixed_float16_scores_past_float16_range_stay_finite():
    q = np.full((1, 2, 4), 300.0, "float32")  # scores 300*300*4/2 = 1.8e5
    v = np.array([[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]], "float32")
    layer = ScaledDotProductAttention(dtype="mixed_float16")
    output = keras.ops.convert_to_numpy(layer(q, v, q)).astype("float32")
    np.testing.assert_allclose(output, np.broadcast_to([3.0, 4.0, 5.0, 6.0], (1, 2, 4)))


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dropout=1.5"):
        ScaledDotProductAttention(dropout=1.5)
    with pytest.raises(ValueError, match="same last dimension"):
        ScaledDotProductAttention()(
            np.ones((1, 2, 3), "float32"),
            np.ones((1, 2, 3), "float32"),
            key=np.ones((1, 2, 4), "float32"),
        )
