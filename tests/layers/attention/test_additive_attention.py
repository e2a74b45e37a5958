import keras
import numpy as np
import pytest

from kerasdl.layers import AdditiveAttention
from kerasdl.testing import run_layer_test


def numpy_additive(q, k, v, w_q, w_k, score_vector, mask=None):
    # score[b, t, s] = v^T tanh(W_q q_t + W_k k_s)
    hidden = np.tanh((q @ w_q)[:, :, None, :] + (k @ w_k)[:, None, :, :])
    scores = hidden @ score_vector
    if mask is not None:
        scores = np.where(mask, scores, -1e9)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return weights @ v, weights


def test_layer_contract():
    run_layer_test(
        AdditiveAttention,
        {"units": 6},
        input_shape=(2, 5, 8),
        expected_output_shape=(2, 5, 8),
        expected_num_trainable_weights=3,
    )


def test_layer_contract_with_bias_and_dropout():
    run_layer_test(
        AdditiveAttention,
        {"units": 3, "use_bias": True, "dropout": 0.2, "seed": 0},
        input_shape=(2, 4, 6),
        expected_output_shape=(2, 4, 6),
        expected_num_trainable_weights=4,
    )


def test_matches_bahdanau_formula_with_different_widths():
    rng = np.random.default_rng(0)
    query = rng.normal(size=(2, 3, 5)).astype("float32")  # decoder states, width 5
    key = rng.normal(size=(2, 4, 7)).astype("float32")  # encoder states, width 7
    value = rng.normal(size=(2, 4, 9)).astype("float32")
    layer = AdditiveAttention(units=6)
    context, weights = layer(query, value, key, return_attention_scores=True)
    expected_context, expected_weights = numpy_additive(
        query,
        key,
        value,
        *(
            keras.ops.convert_to_numpy(w)
            for w in (layer.query_kernel, layer.key_kernel, layer.score_vector)
        ),
    )
    np.testing.assert_allclose(weights, expected_weights, atol=1e-5)
    np.testing.assert_allclose(context, expected_context, atol=1e-5)


def test_single_step_query_with_padding():
    rng = np.random.default_rng(1)
    state = rng.normal(size=(2, 5)).astype("float32")
    encoder = rng.normal(size=(2, 4, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    layer = AdditiveAttention(units=6)
    context, weights = layer(
        state, encoder, value_mask=mask, return_attention_scores=True
    )
    assert context.shape == (2, 8) and weights.shape == (2, 4)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(weights)[~mask], 0.0)
    changed = encoder.copy()
    changed[~mask] = 50.0
    np.testing.assert_allclose(
        layer(state, changed, value_mask=mask), context, atol=1e-5
    )
    expected, _ = numpy_additive(
        state[:, None],
        encoder,
        encoder,
        *(
            keras.ops.convert_to_numpy(w)
            for w in (layer.query_kernel, layer.key_kernel, layer.score_vector)
        ),
        mask=mask[:, None, :],
    )
    np.testing.assert_allclose(context, expected[:, 0], atol=1e-5)


def test_inside_rnn_decoder_model_trains_and_reloads(tmp_path):
    encoder_outputs = keras.Input((6, 8))
    decoder_state = keras.Input((5,))
    context = AdditiveAttention(units=4)(decoder_state, encoder_outputs)
    model = keras.Model(
        [encoder_outputs, decoder_state], keras.layers.Dense(2)(context)
    )
    model.compile(optimizer="adam", loss="mse", jit_compile=True)
    rng = np.random.default_rng(0)
    data = [rng.normal(size=(4, 6, 8)), rng.normal(size=(4, 5))]
    model.fit(data, rng.normal(size=(4, 2)), verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded(data), model(data), atol=1e-6)


def test_mixed_precision():
    layer = AdditiveAttention(units=4, dtype="mixed_float16")
    out = layer(np.ones((2, 3), "float32") * 100, np.ones((2, 4, 6), "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == "float16"


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="units=0"):
        AdditiveAttention(0)
    with pytest.raises(ValueError, match="rank"):
        AdditiveAttention(3)(np.ones((2, 3), "float32"), np.ones((2, 3), "float32"))


def test_projection_kernels_start_different():
    # One initializer object used to be shared by W_q and W_k, which then
    # started identical when query and key have the same width.
    layer = AdditiveAttention(
        units=4, kernel_initializer=keras.initializers.RandomNormal()
    )
    layer.build((2, 3, 6), (2, 5, 6))
    query_kernel, key_kernel = layer.get_weights()[:2]
    assert not np.allclose(query_kernel, key_kernel)


@pytest.mark.parametrize("use_scale", [True, False])
def test_keras_form_matches_keras_additive_attention(use_scale):
    rng = np.random.default_rng(2)
    query = rng.normal(size=(2, 3, 4)).astype("float32")
    value = rng.normal(size=(2, 5, 4)).astype("float32")
    query_mask = np.array([[1, 1, 0], [1, 1, 1]], bool)
    value_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    ours = AdditiveAttention(use_scale=use_scale)
    reference = keras.layers.AdditiveAttention(use_scale=use_scale)
    reference([query, value])
    ours([query, value])
    ours.set_weights(reference.get_weights())
    kwargs = {"mask": [query_mask, value_mask], "return_attention_scores": True}
    out, scores = ours([query, value], **kwargs)
    ref_out, ref_scores = reference([query, value], **kwargs)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_bahdanau_form_takes_keras_call_convention():
    rng = np.random.default_rng(3)
    query = rng.normal(size=(2, 3, 5)).astype("float32")
    value = rng.normal(size=(2, 4, 7)).astype("float32")
    value_mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    layer = AdditiveAttention(units=6)
    as_list = layer([query, value], mask=[None, value_mask])
    separate = layer(query, value, value_mask=value_mask)
    np.testing.assert_allclose(as_list, separate, atol=1e-6)


def test_keras_form_requires_a_list_or_a_value():
    layer = AdditiveAttention()
    x = np.ones((1, 2, 3), "float32")
    with pytest.raises(ValueError, match="must be called on a list"):
        layer(x)
    assert layer(x, x).shape == (1, 2, 3)
    with pytest.raises(ValueError, match="same last dimension"):
        AdditiveAttention()([x, np.ones((1, 2, 4), "float32")])


def test_keras_form_model_saves_and_reloads(tmp_path):
    query, value = keras.Input((3, 4)), keras.Input((5, 4))
    model = keras.Model([query, value], AdditiveAttention(dropout=0.1)([query, value]))
    rng = np.random.default_rng(4)
    data = [rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))]
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded(data), model(data), atol=1e-6)


def test_numpy_dropout_rate_is_accepted_as_in_keras():
    # keras.layers.AdditiveAttention(dropout=np.float32(0.1)) works; a rate
    # from a NumPy hyperparameter grid must work here too.
    layer = AdditiveAttention(dropout=np.float32(0.25))
    assert layer.dropout == 0.25 and type(layer.dropout) is float
    x = np.ones((2, 3, 4), "float32")
    assert tuple(layer([x, x], training=True).shape) == (2, 3, 4)
