"""Behaviour all kerasdl normalization layers share: mixed precision,
XLA-compiled training, channels-first inputs, serialization by registered name."""

import json

import keras
import norm_reference as ref
import numpy as np
import pytest

from kerasdl.layers import (
    BatchNormalization,
    FrozenBatchNormalization,
    GroupNormalization,
    InstanceNormalization,
    LayerNormalization,
    RMSNormalization,
)

LAYERS = {
    "batch": lambda **kw: BatchNormalization(**kw),
    "ghost_batch": lambda **kw: BatchNormalization(virtual_batch_size=2, **kw),
    "renorm_batch": lambda **kw: BatchNormalization(renorm=True, **kw),
    "torch_batch": lambda **kw: BatchNormalization(convention="torch", **kw),
    "layer": lambda **kw: LayerNormalization(**kw),
    "instance": lambda **kw: InstanceNormalization(track_running_stats=True, **kw),
    "group": lambda **kw: GroupNormalization(groups=2, **kw),
    "rms": lambda **kw: RMSNormalization(**kw),
}


def _np(v):
    return keras.ops.convert_to_numpy(v)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_mixed_precision_stats_in_float32(name, policy):
    x = np.random.default_rng(0).normal(300.0, 30.0, size=(4, 6, 6, 8))
    x = x.astype("float16" if policy == "mixed_float16" else "float32")
    layer = LAYERS[name](dtype=policy)
    y = layer(x, training=True)
    compute = policy.split("_")[1]
    assert keras.backend.standardize_dtype(y.dtype) == compute
    y = _np(keras.ops.cast(y, "float32"))
    assert np.all(np.isfinite(y))
    if name != "renorm_batch":  # fresh renorm statistics undo the normalization
        assert np.abs(y).max() < 10  # normalized despite inputs in the hundreds
    for w in layer.weights:
        assert keras.backend.standardize_dtype(w.dtype) == "float32"
    y = _np(keras.ops.cast(layer(x, training=False), "float32"))
    assert np.all(np.isfinite(y))
    if hasattr(layer, "moving_mean") and layer.moving_mean is not None:
        assert np.all(np.isfinite(_np(layer.moving_variance)))


def test_jit_compiled_training_step():
    # One XLA-compiled model chaining every variant keeps this test fast.
    x = np.random.default_rng(0).normal(size=(8, 4, 4, 8)).astype("float32")
    inputs = keras.Input((4, 4, 8))
    h = keras.layers.Conv2D(8, 1)(inputs)
    layers = [LAYERS[name]() for name in sorted(LAYERS)]
    for layer in layers:
        h = layer(h)
    model = keras.Model(inputs, h)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    before = [_np(w).copy() for w in model.weights]
    history = model.fit(x, x, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert np.all(np.isfinite(_np(model(x, training=False))))
    # (A normalizer after a per-channel scale makes that scale's gradient 0,
    # so only the first conv and the last layer are sure to move.)
    after = [_np(w) for w in model.weights]
    assert not np.array_equal(before[0], after[0])
    assert not np.array_equal(_np(layers[-1].gamma), np.ones(8))


@pytest.mark.parametrize("name", ["batch", "ghost_batch", "instance", "group"])
def test_channels_first_equals_channels_last(name):
    x = np.random.default_rng(0).normal(size=(4, 8, 5, 5)).astype("float32")
    first, last = LAYERS[name](axis=1), LAYERS[name]()
    first.build(x.shape)
    last.build((4, 5, 5, 8))
    for w in first.weights:
        w.assign(np.random.default_rng(1).uniform(0.5, 1.5, size=w.shape))
    last.set_weights(first.get_weights())
    x_last = np.moveaxis(x, 1, -1)
    for training in (True, False):
        a = _np(first(x, training=training))
        b = _np(last(x_last, training=training))
        np.testing.assert_allclose(np.moveaxis(a, 1, -1), b, rtol=1e-5, atol=1e-5)
    for a, b in zip(first.weights, last.weights):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_registered_under_kerasdl(name):
    layer = LAYERS[name]()
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"kerasdl>{type(layer).__name__}"
    revived = keras.saving.deserialize_keras_object(serialized)
    assert revived.get_config() == layer.get_config()


def _masked_reference(name, x, mask, axis):
    """NumPy reference for one masked training step (Keras mask semantics)."""
    c = x.shape[axis]
    if name == "batch":
        return ref.batch_norm_train(
            x, None, None, np.zeros(c), np.ones(c), axis=axis, mask=mask
        )[0]
    if name == "instance":
        return ref.instance_norm_train(x, None, None, axis=axis, mask=mask)[0]
    return ref.group_norm(x, None, None, groups=2, axis=axis, mask=mask)


MASKED = {
    "batch": lambda **kw: BatchNormalization(center=False, scale=False, **kw),
    "instance": lambda **kw: InstanceNormalization(center=False, scale=False, **kw),
    "group": lambda **kw: GroupNormalization(groups=2, center=False, scale=False, **kw),
}


@pytest.mark.parametrize("shape", [(3, 4, 6), (3, 4, 4)], ids=["C!=T", "C==T"])
@pytest.mark.parametrize("name", sorted(MASKED))
def test_channels_first_mask_covers_all_but_the_last_axis(name, shape):
    # A Keras mask has the inputs' shape without the LAST axis, whatever the
    # channel axis (Keras' BatchNormalization expands it at -1): for
    # channels-first (batch, C, T) inputs it is (batch, C). Expanding it at
    # the channel axis crashed when C != T and, when C == T, silently took
    # the statistics over the wrong positions.
    x = np.random.default_rng(0).normal(2.0, 3.0, size=shape).astype("float32")
    mask = np.ones(shape[:-1], bool)
    mask[0, 1:] = False
    mask[2, 0] = False
    out = _np(MASKED[name](axis=1)(x, training=True, mask=mask))
    expected = _masked_reference(name, x, mask, axis=1)
    valid = np.broadcast_to(mask[..., None], shape)
    np.testing.assert_allclose(out[valid], expected[valid], rtol=1e-4, atol=1e-4)
    if name == "batch":
        theirs = keras.layers.BatchNormalization(axis=1, center=False, scale=False)
        np.testing.assert_allclose(
            out, _np(theirs(x, training=True, mask=mask)), rtol=1e-4, atol=1e-4
        )


# (Fresh renorm statistics undo the normalization: its outputs are as large as
# its inputs, beyond float16 by design.)
@pytest.mark.parametrize("name", sorted(set(LAYERS) - {"renorm_batch"}))
def test_mixed_float16_float32_inputs_above_float16_max(name):
    # float32 inputs beyond float16's range (65504) must reach the float32
    # statistics unchanged, not as inf (which made the outputs NaN).
    rng = np.random.default_rng(0)
    x = (7e4 + 1e3 * rng.normal(size=(4, 6, 8))).astype("float32")
    layer = LAYERS[name](dtype="mixed_float16")
    reference = LAYERS[name]()
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    y = _np(keras.ops.cast(y, "float32"))
    assert np.all(np.isfinite(y))
    expected = _np(reference(x, training=True))
    np.testing.assert_allclose(y, expected, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("axis", [3, -4])
@pytest.mark.parametrize("name", sorted(LAYERS) + ["frozen_batch"])
def test_compute_output_shape_rejects_out_of_range_axis(name, axis):
    # As Keras' normalization layers do; it used to return the shape as is.
    if name == "frozen_batch":
        layer = FrozenBatchNormalization(axis=axis)
    else:
        layer = LAYERS[name](axis=axis)
    with pytest.raises(ValueError, match="out of bounds for an input of rank 3"):
        layer.compute_output_shape((None, 5, 8))


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (BatchNormalization, {"axis": np.int64(-1), "momentum": np.float32(0.9)}),
        (LayerNormalization, {"axis": [np.int64(-1)], "epsilon": np.float32(1e-3)}),
        (RMSNormalization, {"epsilon": np.float32(1e-3)}),
    ],
    ids=["batch", "layer", "rms"],
)
def test_numpy_scalar_arguments(cls, kwargs):
    # Keras takes NumPy scalars here; they used to be refused as not ints or
    # floats. They are stored as Python numbers, so the config is plain JSON.
    layer = cls(**kwargs)
    json.dumps(layer.get_config())  # NumPy scalars would not serialize
    assert layer(np.ones((2, 3), "float32")).shape == (2, 3)
