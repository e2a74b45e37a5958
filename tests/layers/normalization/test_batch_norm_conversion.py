"""Tests of kerasdl.layers.freeze_batch_norm and kerasdl.layers.fold_batch_norm."""

import os

import keras
import numpy as np
import pytest

from kerasdl.layers import (
    BatchNormalization,
    FrozenBatchNormalization,
    StdConv2D,
    fold_batch_norm,
    freeze_batch_norm,
)

_ALL_BATCH_NORMS = (keras.layers.BatchNormalization, BatchNormalization)


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _np(v):
    return keras.ops.convert_to_numpy(v)


def _randomize_batch_norms(model, seed=0):
    """Moves every batch norm's weights away from the identity transform."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _randomize_batch_norms(layer, seed + 1)
        elif isinstance(layer, (*_ALL_BATCH_NORMS, FrozenBatchNormalization)):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(size=c))
            layer.moving_variance.assign(rng.uniform(0.3, 3.0, size=c))
            if layer.gamma is not None:
                layer.gamma.assign(rng.uniform(0.5, 1.5, size=c))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(size=c))
    return model


def _conv_net():
    """Conv/BN pairs of every foldable kind, plus pairs that must not fold."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    y = BatchNormalization(convention="torch", name="dw_bn")(y)
    z = keras.layers.Conv2D(8, 1, name="pointwise")(x)
    z = keras.layers.BatchNormalization(scale=False, name="pw_bn")(z)
    x = keras.layers.Add()([y, z])
    # The conv's output also feeds the Add: this batch norm must stay.
    shared = keras.layers.Conv2D(8, 1, name="shared_conv")(x)
    kept = keras.layers.BatchNormalization(name="kept_bn")(shared)
    x = keras.layers.Add()([kept, shared])
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5, name="dense")(x)
    outputs = BatchNormalization(center=False, name="dense_bn")(x)
    return _randomize_batch_norms(keras.Model(inputs, outputs))


def _sequential():
    model = keras.Sequential(
        [
            keras.Input((10, 3)),
            keras.layers.Conv1D(6, 3, name="conv1d"),
            keras.layers.BatchNormalization(name="bn1"),
            keras.layers.Activation("relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(4),
            BatchNormalization(),
        ]
    )
    return _randomize_batch_norms(model)


def _types(model):
    return [type(layer).__name__ for layer in model.layers]


# -- freeze_batch_norm ---------------------------------------------------------


@pytest.mark.parametrize("build", [_conv_net, _sequential], ids=["functional", "seq"])
def test_freeze_replaces_every_batch_norm_with_same_outputs(build):
    model = build()
    x = _x((4, *model.inputs[0].shape[1:]))
    frozen = freeze_batch_norm(model)
    assert type(frozen) is type(model)
    assert not any(isinstance(l, _ALL_BATCH_NORMS) for l in frozen.layers)
    n_bn = sum(isinstance(l, _ALL_BATCH_NORMS) for l in model.layers)
    assert sum(isinstance(l, FrozenBatchNormalization) for l in frozen.layers) == n_bn
    expected = _np(model(x, training=False))
    np.testing.assert_array_equal(_np(frozen(x, training=False)), expected)
    np.testing.assert_array_equal(_np(frozen(x, training=True)), expected)


def test_freeze_keeps_names_epsilon_and_dtype_policy():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, dtype="mixed_float16")(inputs)
    x = BatchNormalization(convention="torch", name="torch_bn", dtype="mixed_float16")(
        x
    )
    frozen = freeze_batch_norm(keras.Model(inputs, x))
    layer = frozen.get_layer("torch_bn")
    assert isinstance(layer, FrozenBatchNormalization)
    assert layer.epsilon == 1e-5 and layer.convention == "torch"
    assert layer.dtype_policy.name == "mixed_float16"


def test_frozen_model_fine_tunes_without_touching_statistics():
    model = _conv_net()
    frozen = freeze_batch_norm(model)
    bn_before = {w.path: _np(w).copy() for w in frozen.weights if "bn" in w.path}
    conv_before = _np(frozen.get_layer("conv").kernel).copy()
    original_kernel = _np(model.get_layer("conv").kernel).copy()

    frozen.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    frozen.fit(_x((16, 8, 8, 3)), _x((16, 5), 1), batch_size=4, epochs=1, verbose=0)

    assert bn_before
    for w in frozen.weights:
        if w.path in bn_before:
            np.testing.assert_array_equal(_np(w), bn_before[w.path], err_msg=w.path)
    assert not np.array_equal(_np(frozen.get_layer("conv").kernel), conv_before)
    # The original model shares nothing with the copy.
    np.testing.assert_array_equal(_np(model.get_layer("conv").kernel), original_kernel)


def test_frozen_weights_load_back_into_trainable_batch_norms():
    # A frozen model keeps the weights' order and paths, so its fine-tuned
    # weights load into the original architecture, whose batch norms then
    # train their gamma / beta again.
    model = _sequential()
    frozen = freeze_batch_norm(model)
    assert [w.path for w in frozen.weights] == [w.path for w in model.weights]
    frozen.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    frozen.fit(_x((8, 10, 3)), _x((8, 4), 1), batch_size=4, epochs=1, verbose=0)

    model.set_weights(frozen.get_weights())
    x = _x((4, 10, 3))
    np.testing.assert_allclose(
        _np(model(x, training=False)), _np(frozen(x)), rtol=1e-5, atol=1e-6
    )
    gamma = model.get_layer("bn1").gamma
    assert gamma.trainable
    before = _np(gamma).copy()
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    model.fit(x, _x((4, 4), 2), batch_size=4, epochs=1, verbose=0)
    assert not np.array_equal(_np(gamma), before)


def test_freeze_converts_nested_models():
    inner = _sequential()
    inputs = keras.Input((10, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(inner(inputs)))
    x = _x((3, 10, 3))
    frozen = freeze_batch_norm(model)
    inner_frozen = frozen.layers[1]
    assert any(isinstance(l, FrozenBatchNormalization) for l in inner_frozen.layers)
    assert not any(isinstance(l, _ALL_BATCH_NORMS) for l in inner_frozen.layers)
    np.testing.assert_array_equal(
        _np(frozen(x, training=True)), _np(model(x, training=False))
    )


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)
        self.norm = keras.layers.BatchNormalization()

    def call(self, x):
        return self.norm(self.dense(x))


class _Block(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [keras.layers.Dense(3), keras.layers.BatchNormalization()]

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return x


@pytest.mark.parametrize("convert", [freeze_batch_norm, fold_batch_norm])
def test_refuses_subclassed_models(convert):
    model = _Subclassed(name="my_subclassed")
    model(np.zeros((1, 4), "float32"))
    with pytest.raises(ValueError, match="Functional and Sequential models only.*"):
        convert(model)
    with pytest.raises(ValueError, match="'my_subclassed' of type _Subclassed"):
        convert(model)


def test_freeze_refuses_a_batch_norm_hidden_in_a_custom_layer():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, _Block(name="block")(inputs))
    with pytest.raises(ValueError, match="inside layer 'block' \\(_Block\\)"):
        freeze_batch_norm(model)


# -- fold_batch_norm -----------------------------------------------------------


def test_fold_removes_foldable_batch_norms_with_same_inference_outputs():
    model = _conv_net()
    x = _x((4, 8, 8, 3))
    folded = fold_batch_norm(model)
    names = [layer.name for layer in folded.layers]
    for name in ("bn", "dw_bn", "pw_bn", "dense_bn"):
        assert name not in names
    assert "kept_bn" in names  # its conv's output also feeds an Add
    assert len(folded.layers) == len(model.layers) - 4
    assert folded.get_layer("conv").use_bias  # a bias was added for the offset
    np.testing.assert_allclose(
        _np(folded(x)), _np(model(x, training=False)), rtol=1e-5, atol=1e-5
    )


def test_fold_sequential():
    model = _sequential()
    x = _x((3, 10, 3))
    folded = fold_batch_norm(model)
    assert isinstance(folded, keras.Sequential)
    assert _types(folded) == ["Conv1D", "Activation", "Flatten", "Dense"]
    np.testing.assert_allclose(
        _np(folded(x)), _np(model(x, training=False)), rtol=1e-5, atol=1e-5
    )


def test_fold_of_frozen_model_equals_fold_of_model():
    model = _conv_net()
    x = _x((2, 8, 8, 3))
    a, b = fold_batch_norm(model), fold_batch_norm(freeze_batch_norm(model))
    # The same pairs fold; what cannot fold stays a (frozen) batch norm.
    assert [l.name for l in a.layers] == [l.name for l in b.layers]
    np.testing.assert_allclose(_np(a(x)), _np(b(x)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "make_conv, bn_axis",
    [
        (lambda: keras.layers.Conv2D(4, 3, activation="relu"), -1),
        (lambda: StdConv2D(4, 3), -1),
        (lambda: keras.layers.Conv2D(4, 3), 1),
    ],
    ids=["activation", "conv-subclass", "other-axis"],
)
def test_fold_leaves_what_it_cannot_fold(make_conv, bn_axis):
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.BatchNormalization(axis=bn_axis)(make_conv()(inputs))
    model = _randomize_batch_norms(keras.Model(inputs, x))
    folded = fold_batch_norm(model)
    assert _types(folded) == _types(model)
    x = _x((2, 6, 6, 4))
    np.testing.assert_allclose(
        _np(folded(x)), _np(model(x, training=False)), rtol=1e-6, atol=1e-6
    )


def test_fold_leaves_the_original_untouched():
    model = _conv_net()
    kernel = _np(model.get_layer("conv").kernel).copy()
    fold_batch_norm(model)
    np.testing.assert_array_equal(_np(model.get_layer("conv").kernel), kernel)
    assert not model.get_layer("conv").use_bias


def test_fold_mixed_precision():
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, dtype="mixed_float16")(inputs)
    x = keras.layers.BatchNormalization(dtype="mixed_float16")(x)
    model = _randomize_batch_norms(keras.Model(inputs, x))
    folded = fold_batch_norm(model)
    x = _x((2, 6, 6, 3))
    y = folded(x)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    np.testing.assert_allclose(
        _np(y).astype("float32"),
        _np(model(x, training=False)).astype("float32"),
        rtol=1e-2,
        atol=1e-2,
    )


def test_folded_model_saves_and_exports(tmp_path):
    model = _conv_net()
    x = _x((2, 8, 8, 3))
    folded = fold_batch_norm(model)
    expected = _np(model(x, training=False))

    path = os.path.join(tmp_path, "folded.keras")
    folded.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_np(reloaded(x)), expected, rtol=1e-5, atol=1e-5)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        export_dir = os.path.join(tmp_path, "export")
        folded.export(export_dir, verbose=False)
        restored = tf.saved_model.load(export_dir)
        np.testing.assert_allclose(
            restored.serve(x).numpy(), expected, rtol=1e-5, atol=1e-5
        )


def test_fold_refuses_an_unbuilt_sequential():
    model = keras.Sequential([keras.layers.Dense(3), keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match="needs a built Sequential model"):
        fold_batch_norm(model)
