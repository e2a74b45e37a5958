"""Mask properties of `MultiHeadAttention`, for random shapes and masks.

Each property runs eagerly and compiled with XLA (`tf.function(jit_compile=True)`
on TensorFlow, `jax.jit` on JAX):

* a masked key (padding) never changes any output;
* with `use_causal_mask`, the outputs at step `t` never depend on steps `> t`;
* a query whose keys are all masked gets zero weights and a finite output,
  never NaN.
"""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kerasdl.layers import MultiHeadAttention
from kerasdl.testing import compiled

FEATURES = 8
MODES = ["eager", "xla"]
SETTINGS = settings(max_examples=15, deadline=None)

_LAYERS = {}


def _layer():
    """One built layer (fixed feature size) reused by every example."""
    if "mha" not in _LAYERS:
        layer = MultiHeadAttention(2, 4, use_gate=True)
        layer.build((1, 2, FEATURES), (1, 2, FEATURES))
        _LAYERS["mha"] = layer
    return _LAYERS["mha"]


def _run(mode, function, *args):
    if mode == "xla":
        function = compiled(function, jit_compile=True)
    outputs = function(*args)
    return keras.tree.map_structure(keras.ops.convert_to_numpy, outputs)


def _cases(draw_lengths):
    return st.fixed_dictionaries(
        {
            "batch": st.integers(1, 3),
            "lengths": draw_lengths,
            "use_causal_mask": st.booleans(),
            "seed": st.integers(0, 2**16),
        }
    )


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(case=_cases(st.tuples(st.integers(1, 6), st.integers(1, 6))))
def test_masked_keys_never_change_any_output(mode, case):
    (query_length, key_length), batch = case["lengths"], case["batch"]
    rng = np.random.default_rng(case["seed"])
    query = rng.normal(size=(batch, query_length, FEATURES)).astype("float32")
    value = rng.normal(size=(batch, key_length, FEATURES)).astype("float32")
    value_mask = rng.random((batch, key_length)) < 0.6
    attention_mask = rng.random((batch, query_length, key_length)) < 0.8
    changed = np.where(
        value_mask[..., None], value, 100 * rng.normal(size=value.shape)
    ).astype("float32")
    layer = _layer()

    def attend(value):
        return layer(
            query,
            value,
            value_mask=value_mask,
            attention_mask=attention_mask,
            use_causal_mask=case["use_causal_mask"],
        )

    np.testing.assert_allclose(
        _run(mode, attend, value), _run(mode, attend, changed), atol=1e-5
    )


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(case=_cases(st.tuples(st.integers(2, 7), st.integers(0, 5))))
def test_causal_outputs_never_depend_on_later_steps(mode, case):
    (length, step), batch = case["lengths"], case["batch"]
    step = step % (length - 1)
    rng = np.random.default_rng(case["seed"])
    x = rng.normal(size=(batch, length, FEATURES)).astype("float32")
    padding = rng.random((batch, length)) < 0.8
    changed = x.copy()
    changed[:, step + 1 :] = 10 * rng.normal(size=changed[:, step + 1 :].shape)
    layer = _layer()

    def attend(x):
        return layer(x, x, query_mask=padding, value_mask=padding, use_causal_mask=True)

    before, after = _run(mode, attend, x), _run(mode, attend, changed)
    np.testing.assert_allclose(before[:, : step + 1], after[:, : step + 1], atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(case=_cases(st.tuples(st.integers(1, 6), st.integers(1, 6))))
def test_fully_masked_rows_give_zero_weights_never_nan(mode, case):
    (query_length, key_length), batch = case["lengths"], case["batch"]
    rng = np.random.default_rng(case["seed"])
    query = rng.normal(size=(batch, query_length, FEATURES)).astype("float32")
    value = rng.normal(size=(batch, key_length, FEATURES)).astype("float32")
    attention_mask = rng.random((batch, query_length, key_length)) < 0.5
    attention_mask[:, rng.integers(query_length)] = False  # one row fully masked
    query_mask = rng.random((batch, query_length)) < 0.7
    layer = _layer()

    def attend(query, value):
        return layer(
            query,
            value,
            query_mask=query_mask,
            attention_mask=attention_mask,
            use_causal_mask=case["use_causal_mask"],
            return_attention_scores=True,
        )

    output, scores = _run(mode, attend, query, value)
    allowed = attention_mask & query_mask[:, :, None]
    if case["use_causal_mask"]:
        allowed &= np.tril(np.ones((query_length, key_length), bool))
    empty = ~allowed.any(-1)  # (batch, query_length)
    assert np.all(np.isfinite(output)) and np.all(np.isfinite(scores))
    np.testing.assert_array_equal(
        scores[~np.broadcast_to(allowed[:, None], scores.shape)], 0.0
    )
    np.testing.assert_allclose(scores.sum(-1)[:, 0][~empty], 1.0, atol=1e-5)
    # A row that attends to nothing gets the output projection of zero: its bias.
    bias = keras.ops.convert_to_numpy(layer.output_dense.bias)
    np.testing.assert_allclose(
        output[empty], np.broadcast_to(bias, output[empty].shape), atol=1e-6
    )
