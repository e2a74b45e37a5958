"""Tests of kerasdl.layers.FrozenBatchNormalization."""

import keras
import numpy as np
import pytest

from kerasdl.layers import BatchNormalization, FrozenBatchNormalization
from kerasdl.testing import run_layer_test


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(1.0, 2.0, size=shape).astype("float32")


def _np(v):
    return keras.ops.convert_to_numpy(v)


def _statistics(channels, seed=1):
    rng = np.random.default_rng(seed)
    return {
        "gamma": rng.uniform(0.5, 1.5, channels).astype("float32"),
        "beta": rng.normal(size=channels).astype("float32"),
        "moving_mean": rng.normal(size=channels).astype("float32"),
        "moving_variance": rng.uniform(0.5, 2.0, channels).astype("float32"),
    }


def _frozen(shape, axis=-1, epsilon=1e-3, seed=1, **kwargs):
    layer = FrozenBatchNormalization(axis=axis, epsilon=epsilon, **kwargs)
    layer.build(shape)
    values = _statistics(shape[axis], seed)
    for name, value in values.items():
        weight = getattr(layer, name)
        if weight is not None:
            weight.assign(value)
    return layer, values


def _reference(x, values, axis, epsilon, center=True, scale=True):
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    v = {k: np.reshape(a.astype("float64"), shape) for k, a in values.items()}
    y = (x - v["moving_mean"]) / np.sqrt(v["moving_variance"] + epsilon)
    if scale:
        y = y * v["gamma"]
    if center:
        y = y + v["beta"]
    return y


def test_layer_contract():
    run_layer_test(
        FrozenBatchNormalization,
        {"axis": 1, "epsilon": 1e-5},
        input_shape=(2, 3, 4, 4),
        expected_output_shape=(2, 3, 4, 4),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=4,
    )


@pytest.mark.parametrize(
    "axis, center, scale",
    [(-1, True, True), (1, True, True), (2, False, True), (-1, True, False)],
)
def test_matches_numpy(axis, center, scale):
    x = _x((3, 4, 5, 6))
    layer, values = _frozen(x.shape, axis=axis, center=center, scale=scale)
    expected = _reference(x, values, axis, 1e-3, center=center, scale=scale)
    np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-5, atol=1e-5)


def test_training_computes_the_inference_form():
    x = _x((4, 3, 5))
    layer, _ = _frozen(x.shape)
    np.testing.assert_array_equal(
        _np(layer(x, training=True)), _np(layer(x, training=False))
    )


def test_never_updates_under_fit():
    # Dense -> FrozenBatchNormalization -> Dense: the Dense layers train, the
    # frozen batch norm keeps every one of its four weights, even after
    # `trainable = True`.
    inputs = keras.Input((6,))
    frozen = FrozenBatchNormalization(name="frozen")
    x = frozen(keras.layers.Dense(5)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    for name, value in _statistics(5).items():
        getattr(frozen, name).assign(value)
    frozen.trainable = True
    before = [_np(w).copy() for w in frozen.weights]
    dense_before = _np(model.layers[1].kernel).copy()

    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(_x((32, 6)), _x((32, 2), seed=2), batch_size=8, epochs=2, verbose=0)

    assert frozen.trainable_weights == []
    for old, new in zip(before, frozen.weights):
        np.testing.assert_array_equal(old, _np(new))
    assert not np.array_equal(dense_before, _np(model.layers[1].kernel))


@pytest.mark.parametrize(
    "bn", [keras.layers.BatchNormalization, BatchNormalization], ids=["keras", "ours"]
)
def test_weights_copy_from_batch_normalization(bn):
    x = _x((8, 4, 4, 3))
    source = bn(momentum=0.5)
    source(x, training=True)  # moving statistics away from their initial values
    frozen = FrozenBatchNormalization(epsilon=source.epsilon)
    frozen.build(x.shape)
    assert [w.name for w in frozen.weights] == [w.name for w in source.weights]
    frozen.set_weights(source.get_weights())
    np.testing.assert_allclose(
        _np(frozen(x, training=True)),
        _np(source(x, training=False)),
        rtol=1e-6,
        atol=1e-6,
    )


def test_mixed_precision_statistics_in_float32():
    x = _x((4, 6, 3)) * 300.0  # large values: (x - mean) overflows nothing
    layer, values = _frozen(x.shape, dtype="mixed_float16")
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert all(
        keras.backend.standardize_dtype(w.dtype) == "float32" for w in layer.weights
    )
    expected = _reference(x, values, -1, 1e-3)
    np.testing.assert_allclose(_np(y).astype("float32"), expected, rtol=2e-3, atol=2e-3)


def test_epsilon_default_follows_convention():
    assert FrozenBatchNormalization().epsilon == 1e-3
    assert FrozenBatchNormalization(convention="torch").epsilon == 1e-5


def test_config_has_no_trainable_only_arguments():
    config = FrozenBatchNormalization(axis=1, epsilon=1e-5).get_config()
    assert "gamma_regularizer" not in config
    assert FrozenBatchNormalization.from_config(config).get_config() == config


def test_load_torch_state_dict_from_arrays():
    x = _x((2, 3, 4, 4))
    layer = FrozenBatchNormalization(axis=1, convention="torch")
    layer.build(x.shape)
    values = _statistics(3)
    state = {
        "weight": values["gamma"],
        "bias": values["beta"],
        "running_mean": values["moving_mean"],
        "running_var": values["moving_variance"],
        "num_batches_tracked": np.array(7),
    }
    layer.load_torch_state_dict(state)
    np.testing.assert_allclose(
        _np(layer(x)), _reference(x, values, 1, 1e-5), rtol=1e-5, atol=1e-5
    )
    del state["running_var"]
    with pytest.raises(ValueError, match="missing keys \\['running_var'\\]"):
        layer.load_torch_state_dict(state)


@pytest.mark.parametrize("axis", [[1, 2], (-1,)])
def test_rejects_several_axes(axis):
    with pytest.raises(ValueError, match="must be a single int. Received: axis="):
        FrozenBatchNormalization(axis=axis)


def test_matches_torch_batch_norm_in_eval_mode():
    torch = pytest.importorskip("torch")
    module = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        values = _statistics(3)
        module.weight.copy_(torch.from_numpy(values["gamma"]))
        module.bias.copy_(torch.from_numpy(values["beta"]))
        module.running_mean.copy_(torch.from_numpy(values["moving_mean"]))
        module.running_var.copy_(torch.from_numpy(values["moving_variance"]))
    module.eval()
    x = _x((2, 3, 5, 5))
    layer = FrozenBatchNormalization(axis=1, convention="torch")
    layer.build(x.shape)
    layer.load_torch_state_dict(module.state_dict())
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_np(layer(x, training=True)), expected, atol=1e-5)


@pytest.mark.parametrize("name", ["gamma_regularizer", "beta_constraint"])
def test_regularizers_and_constraints_are_refused(name):
    # The layer has no trainable weight for them to act on; they used to be
    # accepted and silently dropped.
    with pytest.raises(ValueError, match=f"Unrecognized keyword arguments.*{name}"):
        FrozenBatchNormalization(**{name: "l2" if "regularizer" in name else "non_neg"})
