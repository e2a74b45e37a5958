import os

import keras
import numpy as np
import pytest

from kerasdl.layers import MultiHeadAttention
from kerasdl.testing import compiled, run_layer_test


def _pair(num_heads=2, key_dim=4, value_dim=None, output_shape=None, use_bias=True):
    """A kerasdl MHA and a Keras MHA with the same weights."""
    ours = MultiHeadAttention(
        num_heads,
        key_dim,
        value_dim=value_dim,
        output_shape=output_shape,
        use_bias=use_bias,
    )
    reference = keras.layers.MultiHeadAttention(
        num_heads,
        key_dim,
        value_dim=value_dim,
        output_shape=output_shape,
        use_bias=use_bias,
    )
    return ours, reference


def test_layer_contract():
    run_layer_test(
        MultiHeadAttention,
        {"num_heads": 2, "key_dim": 4, "dropout": 0.1, "seed": 1},
        input_shape=(2, 5, 8),
        expected_output_shape=(2, 5, 8),
        expected_num_trainable_weights=8,
    )


def test_layer_contract_without_bias_and_output_shape():
    run_layer_test(
        MultiHeadAttention,
        {
            "num_heads": 3,
            "key_dim": 2,
            "value_dim": 5,
            "use_bias": False,
            "output_shape": 6,
        },
        input_shape=(2, 4, 8),
        expected_output_shape=(2, 4, 6),
        expected_num_trainable_weights=4,
    )


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("value_dim", [4, 5])
def test_matches_keras_multi_head_attention(use_bias, value_dim):
    if value_dim != 4 and keras.backend.backend() == "jax":
        # Keras 3.15's own layer fails there (jax.nn.dot_product_attention wants
        # one head size for keys and values); kerasdl's does not.
        pytest.skip("keras.layers.MultiHeadAttention needs value_dim == key_dim on JAX")
    rng = np.random.default_rng(0)
    query = rng.normal(size=(2, 3, 8)).astype("float32")
    value = rng.normal(size=(2, 5, 6)).astype("float32")
    key = rng.normal(size=(2, 5, 7)).astype("float32")
    ours, reference = _pair(
        3, 4, value_dim=value_dim, output_shape=9, use_bias=use_bias
    )
    reference(query, value, key)
    ours(query, value, key)
    assert [w.shape for w in ours.get_weights()] == [
        w.shape for w in reference.get_weights()
    ]
    ours.set_weights(reference.get_weights())
    attention_mask = rng.random((2, 3, 5)) > 0.3
    attention_mask[..., 0] = True
    for kwargs in ({}, {"attention_mask": attention_mask}):
        out, scores = ours(query, value, key, return_attention_scores=True, **kwargs)
        ref_out, ref_scores = reference(
            query, value, key, return_attention_scores=True, **kwargs
        )
        np.testing.assert_allclose(out, ref_out, atol=1e-5)
        np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_matches_keras_self_attention_with_causal_and_padding_masks():
    tokens = np.array([[3, 1, 4, 1, 5], [9, 2, 6, 0, 0]])
    embedding = keras.layers.Embedding(10, 8, mask_zero=True)
    x = embedding(tokens)
    ours, reference = _pair(2, 4)
    reference(x, x)
    ours(x, x)
    ours.set_weights(reference.get_weights())
    out = ours(x, x, use_causal_mask=True)
    ref = reference(x, x, use_causal_mask=True)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_causal_outputs_ignore_future_tokens():
    rng = np.random.default_rng(2)
    layer = MultiHeadAttention(2, 4)
    for trial in range(10):
        x = rng.normal(size=(1, 6, 8)).astype("float32")
        t = int(rng.integers(0, 5))
        changed = x.copy()
        changed[:, t + 1 :] = rng.normal(size=changed[:, t + 1 :].shape)
        before = layer(x, x, use_causal_mask=True)
        after = layer(changed, changed, use_causal_mask=True)
        np.testing.assert_allclose(before[:, : t + 1], after[:, : t + 1], atol=1e-5)


def test_padded_keys_do_not_change_unpadded_outputs():
    rng = np.random.default_rng(3)
    layer = MultiHeadAttention(2, 4)
    query = rng.normal(size=(1, 3, 8)).astype("float32")
    value = rng.normal(size=(1, 6, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0]], bool)
    changed = value.copy()
    changed[:, 4:] = 100 * rng.normal(size=(1, 2, 8))
    np.testing.assert_allclose(
        layer(query, value, value_mask=mask),
        layer(query, changed, value_mask=mask),
        atol=1e-5,
    )


def test_mixed_precision_cross_attention():
    layer = MultiHeadAttention(2, 4, dtype="mixed_float16")
    query = np.full((2, 3, 8), 30.0, "float32")
    value = np.full((2, 4, 6), 30.0, "float32")
    out, scores = layer(query, value, return_attention_scores=True)
    assert scores.shape == (2, 2, 3, 4)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    assert layer.query_dense.kernel.dtype == "float32"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(out).astype("float32")))


def test_jit_compiled_training_step():
    inputs = keras.Input((5, 8))
    memory = keras.Input((7, 8))
    outputs = MultiHeadAttention(2, 4, dropout=0.1)(inputs, memory)
    model = keras.Model([inputs, memory], outputs)
    model.compile(optimizer="adam", loss="mse", jit_compile=True)
    rng = np.random.default_rng(0)
    data = [rng.normal(size=(4, 5, 8)), rng.normal(size=(4, 7, 8))]
    history = model.fit(data, rng.normal(size=(4, 5, 8)), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_cross_attention_model_saves_and_reloads(tmp_path):
    inputs = keras.Input((5, 8))
    memory = keras.Input((7, 6))
    outputs = MultiHeadAttention(2, 4, value_dim=3)(inputs, memory)
    model = keras.Model([inputs, memory], outputs)
    rng = np.random.default_rng(0)
    data = [rng.normal(size=(2, 5, 8)), rng.normal(size=(2, 7, 6))]
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded(data), model(data), atol=1e-6)


def test_works_inside_tf_function():
    layer = MultiHeadAttention(2, 4)
    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    eager = layer(x, use_causal_mask=True)
    graph = compiled(lambda t: layer(t, use_causal_mask=True))(x)
    np.testing.assert_allclose(graph, eager, atol=1e-6)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_heads=0"):
        MultiHeadAttention(0, 4)
    with pytest.raises(ValueError, match="output_shape"):
        MultiHeadAttention(2, 4, output_shape=(3, 0))
    with pytest.raises(ValueError, match="sliding_window=0"):
        MultiHeadAttention(2, 4, sliding_window=0)
    with pytest.raises(ValueError, match="attention_axes"):
        MultiHeadAttention(2, 4, attention_axes=0)(np.ones((2, 3, 4, 5), "float32"))
    with pytest.raises(ValueError, match="must be equal.*key_shape=\\(2, 6, 5\\)"):
        MultiHeadAttention(2, 4)(
            np.ones((2, 3, 5), "float32"),
            np.ones((2, 4, 5), "float32"),
            np.ones((2, 6, 5), "float32"),
        )


def test_projection_kernels_start_different():
    # One initializer object used to be shared by the query, key and value
    # kernels, which then started identical.
    layer = MultiHeadAttention(
        2, 4, kernel_initializer=keras.initializers.TruncatedNormal()
    )
    layer.build((2, 3, 8), (2, 3, 8))
    query, key, value = layer.get_weights()[0:6:2]  # kernel, bias per projection
    assert not np.allclose(query, key)
    assert not np.allclose(query, value)
    assert not np.allclose(key, value)


def test_seeded_initializer_is_reproducible_but_differs_per_projection():
    def kernels():
        layer = MultiHeadAttention(
            2, 4, kernel_initializer=keras.initializers.GlorotUniform(seed=3)
        )
        layer.build((2, 3, 8), (2, 3, 8))
        return [
            keras.ops.convert_to_numpy(d.kernel)
            for d in (layer.query_dense, layer.key_dense)
        ]

    first, second = kernels(), kernels()
    np.testing.assert_array_equal(first[0], second[0])
    assert not np.allclose(first[0], first[1])


@pytest.mark.parametrize("use_gate", [False, True])
def test_matches_keras_with_gate_per_head_mask_and_tuple_output_shape(use_gate):
    rng = np.random.default_rng(4)
    query = rng.normal(size=(2, 3, 8)).astype("float32")
    value = rng.normal(size=(2, 5, 8)).astype("float32")
    kwargs = {"use_gate": use_gate, "output_shape": (2, 3)}
    ours = MultiHeadAttention(2, 4, **kwargs)
    reference = keras.layers.MultiHeadAttention(2, 4, **kwargs)
    reference(query, value)
    ours(query, value)
    ours.set_weights(reference.get_weights())
    per_head = rng.random((2, 2, 3, 5)) > 0.3
    per_head[..., 0] = True
    out, scores = ours(
        query, value, attention_mask=per_head, return_attention_scores=True
    )
    ref_out, ref_scores = reference(
        query, value, attention_mask=per_head, return_attention_scores=True
    )
    assert out.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_matches_keras_on_2d_attention_axes():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 3, 4, 8)).astype("float32")
    ours = MultiHeadAttention(2, 4, attention_axes=(1, 2))
    reference = keras.layers.MultiHeadAttention(2, 4, attention_axes=(1, 2))
    reference(x, x)
    ours(x, x)
    ours.set_weights(reference.get_weights())
    out, scores = ours(x, x, return_attention_scores=True)
    ref_out, ref_scores = reference(x, x, return_attention_scores=True)
    assert scores.shape == (2, 2, 3, 4, 3, 4)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_per_head_mask_combines_with_padding_mask_per_batch_row():
    # A (B, T, S) padding mask and a (B, heads, T, S) mask are ANDed per batch
    # row and head, not broadcast against each other.
    rng = np.random.default_rng(6)
    query = rng.normal(size=(3, 2, 8)).astype("float32")
    value = rng.normal(size=(3, 4, 8)).astype("float32")
    value_mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], bool)
    per_head = np.ones((3, 2, 2, 4), bool)
    per_head[:, 1, :, 0] = False
    layer = MultiHeadAttention(2, 4)
    _, scores = layer(
        query,
        value,
        value_mask=value_mask,
        attention_mask=per_head,
        return_attention_scores=True,
    )
    scores = keras.ops.convert_to_numpy(scores)
    expected = per_head & value_mask[:, None, None, :]
    np.testing.assert_array_equal(scores[~expected], 0.0)
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)


def test_fully_masked_query_row_gives_zero_weights_not_nan():
    layer = MultiHeadAttention(2, 4, use_bias=False)
    x = np.random.default_rng(7).normal(size=(1, 3, 8)).astype("float32")
    mask = np.ones((1, 3, 3), bool)
    mask[0, 1] = False
    out, scores = layer(x, x, attention_mask=mask, return_attention_scores=True)
    scores = keras.ops.convert_to_numpy(scores)
    np.testing.assert_array_equal(scores[:, :, 1], 0.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out)[0, 1], 0.0)
    assert np.all(np.isfinite(scores))


def test_sliding_window_with_causal_mask_sees_latest_positions():
    layer = MultiHeadAttention(2, 4, sliding_window=2)
    x = np.random.default_rng(8).normal(size=(1, 5, 8)).astype("float32")
    _, scores = layer(x, x, use_causal_mask=True, return_attention_scores=True)
    allowed = np.tril(np.ones((5, 5), bool)) & ~np.tril(np.ones((5, 5), bool), -2)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(scores)[0, 0] > 0, allowed)


def test_loads_weights_of_the_earlier_own_variable_layout():
    # Before the projections were EinsumDense sublayers, their eight weights
    # were the layer's own variables; such files still load.
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 3, 8)).astype("float32")
    reference = keras.layers.MultiHeadAttention(2, 4)
    reference(x, x)
    layer = MultiHeadAttention(2, 4)
    layer(x, x)
    store = {str(i): w for i, w in enumerate(reference.get_weights())}
    layer.load_own_variables(store)
    for projection in (layer.query_dense, layer.output_dense):
        projection.load_own_variables({})  # the file has no entry for them
    np.testing.assert_allclose(layer(x, x), reference(x, x), atol=1e-5)
    with pytest.raises(ValueError, match="expected 2 variables"):
        layer.query_dense.load_own_variables({})  # only skipped once


def test_int8_quantized_model_runs():
    inputs = keras.Input((4, 8))
    model = keras.Model(inputs, MultiHeadAttention(2, 4)(inputs, inputs))
    x = np.random.default_rng(10).normal(size=(2, 4, 8)).astype("float32")
    before = keras.ops.convert_to_numpy(model(x))
    model.quantize("int8")
    after = keras.ops.convert_to_numpy(model(x))
    assert np.mean((before - after) ** 2) < 1e-2


def test_mixed_float16_scores_past_float16_range_stay_finite():
    # Query-key products of about 1e5 pass float16's largest value (65504);
    # computed in float16 they become inf and the softmax gives NaN.
    layer = MultiHeadAttention(1, 2, use_bias=False, dtype="mixed_float16")
    x = np.full((1, 3, 2), 200.0, dtype="float32")
    layer(x, x)
    layer.set_weights([np.ones_like(w) for w in layer.get_weights()])
    # scores = (400 / sqrt(2)) * 400 * 2 ≈ 2.3e5 per query-key pair.
    output = layer(x, x)
    assert keras.backend.standardize_dtype(output.dtype) == "float16"
    output = keras.ops.convert_to_numpy(output).astype("float32")
    np.testing.assert_allclose(output, np.full((1, 3, 2), 800.0), rtol=1e-3)
