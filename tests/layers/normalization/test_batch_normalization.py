"""Tests of kerasdl.layers.BatchNormalization."""

import keras
import norm_reference as ref
import numpy as np
import pytest

from kerasdl.layers import BatchNormalization
from kerasdl.testing import run_layer_test


def _x(shape, seed=0, loc=2.0, scale=3.0):
    return np.random.default_rng(seed).normal(loc, scale, size=shape).astype("float32")


def _np(v):
    return keras.ops.convert_to_numpy(v)


def test_layer_contract():
    run_layer_test(
        BatchNormalization,
        {"momentum": 0.9, "virtual_batch_size": 2, "gamma_regularizer": "l2"},
        input_shape=(4, 5, 5, 8),
        expected_output_shape=(4, 5, 5, 8),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=2,
    )


@pytest.mark.parametrize("axis", [-1, 1])
def test_train_and_inference_match_numpy(axis):
    x = _x((6, 4, 5, 3))
    layer = BatchNormalization(axis=axis, momentum=0.8, epsilon=1e-3)
    layer.build(x.shape)
    c = x.shape[axis]
    gamma = np.linspace(0.5, 1.5, c)
    beta = np.linspace(-1.0, 1.0, c)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    mm, mv = np.zeros(c), np.ones(c)
    for step in range(3):
        xs = _x(x.shape, seed=step)
        expected, mm, mv = ref.batch_norm_train(
            xs, gamma, beta, mm, mv, axis=axis, momentum=0.8
        )
        np.testing.assert_allclose(
            _np(layer(xs, training=True)), expected, rtol=1e-4, atol=1e-4
        )
    np.testing.assert_allclose(_np(layer.moving_mean), mm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(layer.moving_variance), mv, rtol=1e-5, atol=1e-5)
    expected = ref.batch_norm_inference(x, gamma, beta, mm, mv, axis=axis)
    np.testing.assert_allclose(
        _np(layer(x, training=False)), expected, rtol=1e-4, atol=1e-4
    )


def _fit_pair(ours, theirs, x, y, steps=4, jit_compile=False):
    models = []
    for layer in (ours, theirs):
        inputs = keras.Input(x.shape[1:])
        model = keras.Model(
            inputs,
            layer(
                keras.layers.Dense(x.shape[-1], kernel_initializer="identity")(inputs)
            ),
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.05), loss="mse", jit_compile=jit_compile
        )
        model.fit(
            x, y, batch_size=8, epochs=steps // (len(x) // 8), shuffle=False, verbose=0
        )
        models.append(model)
    return models


@pytest.mark.parametrize(
    "kwargs",
    [
        {"momentum": 0.9},
        {"momentum": 0.9, "center": False, "epsilon": 1e-2},
        {
            "momentum": 0.9,
            "renorm": True,
            "renorm_momentum": 0.8,
            "renorm_clipping": {"rmax": 1.5, "rmin": 0.7, "dmax": 0.5},
        },
    ],
    ids=["plain", "no_center", "renorm"],
)
def test_matches_keras_after_fit(kwargs):
    x, y = _x((32, 6, 4)), _x((32, 6, 4), seed=1, loc=0.0, scale=1.0)
    ours, theirs = _fit_pair(
        BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs), x, y
    )
    for a, b in zip(ours.weights, theirs.weights):
        assert a.name == b.name
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        _np(ours(x, training=False)),
        _np(theirs(x, training=False)),
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        _np(ours(x, training=True)), _np(theirs(x, training=True)), rtol=1e-5, atol=1e-5
    )


def test_jit_compiled_training_matches_keras():
    x, y = _x((16, 8, 8, 4)), _x((16, 8, 8, 4), seed=1)
    ours, theirs = _fit_pair(
        BatchNormalization(momentum=0.9),
        keras.layers.BatchNormalization(momentum=0.9),
        x,
        y,
        steps=2,
        jit_compile=True,
    )
    for a, b in zip(ours.weights, theirs.weights):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-5, atol=1e-6)


def test_torch_convention_numerics():
    layer = BatchNormalization(convention="torch")
    assert (layer.momentum, layer.epsilon) == (0.1, 1e-5)
    assert BatchNormalization.from_config(layer.get_config()).get_config() == (
        layer.get_config()
    )
    x = _x((5, 3, 4, 6))
    layer.build(x.shape)
    mm, mv = np.zeros(6), np.ones(6)
    for step in range(3):
        xs = _x(x.shape, seed=step)
        expected, mm, mv = ref.batch_norm_train(
            xs,
            np.ones(6),
            np.zeros(6),
            mm,
            mv,
            momentum=0.1,
            epsilon=1e-5,
            convention="torch",
        )
        np.testing.assert_allclose(
            _np(layer(xs, training=True)), expected, rtol=1e-4, atol=1e-4
        )
    np.testing.assert_allclose(_np(layer.moving_mean), mm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(layer.moving_variance), mv, rtol=1e-5, atol=1e-6)
    expected = ref.batch_norm_inference(
        x, np.ones(6), np.zeros(6), mm, mv, epsilon=1e-5
    )
    np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-4, atol=1e-4)


def test_ghost_batches_normalize_each_virtual_batch():
    x = _x((12, 5, 4))
    layer = BatchNormalization(virtual_batch_size=3, momentum=0.5)
    out = _np(layer(x, training=True))
    # Each virtual batch is normalized as a batch of its own.
    for i in range(0, 12, 3):
        alone = BatchNormalization()(x[i : i + 3], training=True)
        np.testing.assert_allclose(out[i : i + 3], _np(alone), rtol=1e-5, atol=1e-5)
    # Moving statistics: one update with the mean of the virtual-batch stats.
    expected, mm, mv = ref.batch_norm_train(
        x, None, None, np.zeros(4), np.ones(4), momentum=0.5, virtual_batch_size=3
    )
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_np(layer.moving_mean), mm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(layer.moving_variance), mv, rtol=1e-5, atol=1e-6)
    # Inference ignores virtual batches.
    plain = BatchNormalization(momentum=0.5)
    plain.build(x.shape)
    for a, b in zip(layer.weights, plain.weights):
        b.assign(a)
    np.testing.assert_allclose(_np(layer(x)), _np(plain(x)), atol=1e-6)


def test_ghost_batch_size_must_divide_batch():
    with pytest.raises(ValueError, match="virtual_batch_size=4 for a batch of 6"):
        BatchNormalization(virtual_batch_size=4)(_x((6, 3)), training=True)


def test_mask_excludes_padded_steps():
    x = _x((4, 7, 3))
    mask = np.ones((4, 7), bool)
    mask[:, 5:] = False
    mask[0, 2:] = False
    x_padded = np.where(mask[..., None], x, 1e3).astype("float32")  # junk padding
    layer = BatchNormalization(momentum=0.0)
    out = _np(layer(x_padded, training=True, mask=mask))
    valid = x[mask]  # (num_valid, 3)
    mean, var = valid.mean(0), valid.var(0)
    np.testing.assert_allclose(
        out[mask], (valid - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(_np(layer.moving_mean), mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(layer.moving_variance), var, rtol=1e-5, atol=1e-5)
    # Same as Keras' masked batch norm, and the mask flows on through a model.
    theirs = keras.layers.BatchNormalization(momentum=0.0)
    np.testing.assert_allclose(
        out, _np(theirs(x_padded, training=True, mask=mask)), rtol=1e-4, atol=1e-4
    )
    inputs = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    h = BatchNormalization()(h)
    assert h._keras_mask is not None


def test_load_torch_state_dict():
    rng = np.random.default_rng(0)
    state = {
        "weight": rng.normal(size=4),
        "bias": rng.normal(size=4),
        "running_mean": rng.normal(size=4),
        "running_var": rng.uniform(0.5, 2.0, size=4),
        "num_batches_tracked": np.array(7),
    }
    layer = BatchNormalization(axis=1, convention="torch")
    layer.build((None, 4, 5, 5))
    layer.load_torch_state_dict(state)
    x = _x((2, 4, 5, 5))
    expected = ref.batch_norm_inference(
        x,
        state["weight"],
        state["bias"],
        state["running_mean"],
        state["running_var"],
        axis=1,
        epsilon=1e-5,
    )
    np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-4, atol=1e-4)

    with pytest.raises(ValueError, match=r"missing keys \['running_var'\]"):
        layer.load_torch_state_dict(
            {k: v for k, v in state.items() if k != "running_var"}
        )
    with pytest.raises(ValueError, match=r"has shape \(3,\)"):
        layer.load_torch_state_dict(dict(state, bias=np.zeros(3)))
    with pytest.raises(ValueError, match="Build BatchNormalization"):
        BatchNormalization().load_torch_state_dict(state)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="gradients via tf.GradientTape"
)
def test_renorm_stops_gradient_through_r_and_d():
    import tensorflow as tf

    x = tf.constant(_x((8, 3)))
    layer = BatchNormalization(renorm=True, renorm_clipping={"rmax": 3.0})
    layer.build(x.shape)
    plain = BatchNormalization()
    plain.build(x.shape)
    grads = []
    for bn in (layer, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = bn(x, training=True)
            loss = tf.reduce_sum(y * tf.range(3, dtype="float32"))
        grads.append(tape.gradient(loss, x).numpy())
    # With fresh renorm statistics r = std_batch / 1, d = mean_batch / 1; as
    # constants they only rescale the plain gradient by r per channel.
    r = np.minimum(np.sqrt(x.numpy().var(0) + 1e-3), 3.0)
    np.testing.assert_allclose(grads[0], grads[1] * r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"momentum": 1.5}, "momentum=1.5"),
        ({"epsilon": 0.0}, "epsilon=0.0"),
        ({"epsilon": -1e-3}, "epsilon=-0.001"),
        ({"convention": "caffe"}, "convention='caffe'"),
        ({"virtual_batch_size": 0}, "virtual_batch_size=0"),
        ({"renorm": True, "convention": "torch"}, "convention='torch'"),
        ({"renorm": True, "renorm_clipping": {"rmax": 1, "rmin": 2}}, "rmax should be"),
        ({"renorm": True, "renorm_clipping": {"r": 1}}, r"invalid keys: \['r'\]"),
        ({"axis": [1, 2]}, r"axis=\[1, 2\]"),
        ({"synchronized": True, "virtual_batch_size": 2}, "virtual_batch_size=2"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchNormalization(**kwargs)


@pytest.mark.parametrize(
    "kwargs, shape, message",
    [
        ({"axis": 3}, (2, 4, 4), "axis=3"),
        ({"axis": 0}, (2, 4), "batch axis"),
        ({}, (4,), r"rank >= 2. Received: input_shape=\(4,\)"),
    ],
)
def test_bad_input_shapes(kwargs, shape, message):
    with pytest.raises(ValueError, match=message):
        BatchNormalization(**kwargs).build(shape)


@pytest.mark.parametrize("kwargs", [{}, {"renorm": True}, {"convention": "torch"}])
def test_float64_policy_trains(kwargs):
    # The float32 batch statistics used to be added to float64 moving
    # variables, which TensorFlow refuses; Keras' layer trains under float64.
    x = _x((4, 3, 2)).astype("float64")
    layer = BatchNormalization(momentum=0.5, dtype="float64", **kwargs)
    layer(x, training=True)  # (JAX without x64 computes in float32)
    np.testing.assert_allclose(
        _np(layer.moving_mean), 0.5 * x.mean(axis=(0, 1)), rtol=1e-5
    )


def test_renorm_with_plain_callable_initializers():
    # Keras takes any callable; the renorm statistics used to call
    # `from_config` on it to clone it, an AttributeError for a function.
    def fours(shape, dtype=None):
        return keras.ops.full(shape, 4.0, dtype=dtype)

    layer = BatchNormalization(
        renorm=True, moving_mean_initializer=fours, moving_variance_initializer=fours
    )
    layer.build((2, 3))
    np.testing.assert_allclose(_np(layer.renorm_mean), np.full(3, 4.0))
    np.testing.assert_allclose(_np(layer.moving_stddev), np.full(3, 2.0))
