import math
import os

import keras
import numpy as np
import pytest

import kerasdl
from kerasdl.regularizers import L1, L1L2, L2, OrthogonalRegularizer

WEIGHTS = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -0.25]], "float32")


def _train_dense(kernel_regularizer, optimizer):
    """Three full-batch steps of a bias-free Dense; returns its kernel."""
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = np.random.default_rng(1).normal(size=(16, 2)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(
                2, use_bias=False, kernel_regularizer=kernel_regularizer
            ),
        ]
    )
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    return model.get_weights()[0]


def _value(regularizer, x=WEIGHTS):
    return float(keras.ops.convert_to_numpy(regularizer(x)))


@pytest.mark.parametrize(
    "regularizer, expected",
    [
        (L1(0.1), 0.1 * np.abs(WEIGHTS).sum()),
        (L2(0.2), 0.2 * np.square(WEIGHTS).sum()),
        (
            L1L2(l1=0.1, l2=0.2),
            0.1 * np.abs(WEIGHTS).sum() + 0.2 * np.square(WEIGHTS).sum(),
        ),
        (L1L2(), 0.0),
    ],
)
def test_penalty_matches_numpy(regularizer, expected):
    assert _value(regularizer) == pytest.approx(expected, rel=1e-6)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="gradients via tf.GradientTape"
)
def test_l2_gradient_is_the_textbook_lambda_times_w():
    # (λ/2)·Σw² has gradient λ·w; with l2 = λ/2 the gradients agree.
    import tensorflow as tf

    lam = 0.3
    w = tf.Variable(WEIGHTS)
    with tf.GradientTape() as tape:
        penalty = L2(l2=lam / 2)(w)
    np.testing.assert_allclose(
        tape.gradient(penalty, w).numpy(), lam * WEIGHTS, rtol=1e-6
    )


def test_sgd_step_with_l2_equals_decoupled_weight_decay():
    # The docstring's claim: for plain SGD, weight_decay = 2 * l2.
    l2, lr = 0.05, 0.1
    coupled = _train_dense(L2(l2), keras.optimizers.SGD(lr))
    decoupled = _train_dense(None, keras.optimizers.SGD(lr, weight_decay=2 * l2))
    np.testing.assert_allclose(coupled, decoupled, rtol=1e-5, atol=1e-6)


def test_penalty_reaches_model_losses():
    layer = keras.layers.Dense(3, kernel_regularizer=L2(0.5))
    layer.build((None, 4))
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    assert float(layer.losses[0]) == pytest.approx(
        0.5 * np.square(kernel).sum(), rel=1e-5
    )


@pytest.mark.parametrize("regularizer", [L1(0.1), L2(0.2), L1L2(0.1, 0.2)])
def test_config_round_trip(regularizer):
    config = regularizer.get_config()
    revived = type(regularizer).from_config(config)
    assert revived.get_config() == config
    serialized = keras.saving.serialize_keras_object(regularizer)
    assert serialized["registered_name"] == f"kerasdl>{type(regularizer).__name__}"
    for get in (kerasdl.regularizers.get, keras.regularizers.get):
        restored = get(serialized)
        assert type(restored) is type(regularizer)
        assert restored.get_config() == config


def test_saved_model_reloads_without_custom_objects(tmp_path):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(2, kernel_regularizer=L1L2(0.1, 0.2))]
    )
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    regularizer = reloaded.layers[0].kernel_regularizer
    assert type(regularizer) is L1L2
    assert regularizer.get_config() == {"l1": 0.1, "l2": 0.2}


@pytest.mark.parametrize("cls, name", [(L1, "l1"), (L2, "l2")])
@pytest.mark.parametrize("value", [-0.1, math.nan, math.inf, "0.1"])
def test_invalid_factor_is_refused(cls, name, value):
    with pytest.raises(ValueError, match=f"Received: {name}="):
        cls(value)


@pytest.mark.parametrize(
    "make, config",
    [
        (lambda: L1(l1=None), {"l1": 0.01}),
        (lambda: L2(l2=None), {"l2": 0.01}),
        (lambda: L1L2(l1=None, l2=0.5), {"l1": 0.0, "l2": 0.5}),
        (lambda: L1L2(l1=0.5, l2=None), {"l1": 0.5, "l2": 0.0}),
    ],
)
def test_none_factor_means_the_default_as_in_keras(make, config):
    # keras.regularizers.L2(l2=None) is L2(0.01); L1L2(l1=None) has l1=0.
    assert make().get_config() == pytest.approx(config)


def test_l1l2_validates_both_factors():
    with pytest.raises(ValueError, match="Received: l1=-1"):
        L1L2(l1=-1)
    with pytest.raises(ValueError, match="Received: l2=inf"):
        L1L2(l2=math.inf)


@pytest.mark.parametrize(
    "identifier, cls, config",
    [
        ("l1", L1, {"l1": 0.01}),
        ("l2", L2, {"l2": 0.01}),
        ("l1_l2", L1L2, {"l1": 0.0, "l2": 0.0}),
        ("L2", L2, {"l2": 0.01}),
        ({"class_name": "L2", "config": {"l2": 1e-4}}, L2, {"l2": 1e-4}),
        ({"class_name": "L1L2", "config": {"l1": 0.5}}, L1L2, {"l1": 0.5, "l2": 0.0}),
    ],
)
def test_get_resolves_names_and_dicts_to_kerasdl(identifier, cls, config):
    regularizer = kerasdl.regularizers.get(identifier)
    assert type(regularizer) is cls
    assert regularizer.get_config() == config


def test_get_passes_through_instances_callables_and_none():
    l2 = L2(0.3)
    assert kerasdl.regularizers.get(l2) is l2
    assert kerasdl.regularizers.get(None) is None
    fn = lambda w: keras.ops.sum(w)
    assert kerasdl.regularizers.get(fn) is fn
    # A config naming Keras' class in full stays Keras'.
    keras_orthogonal = keras.regularizers.OrthogonalRegularizer(0.1)
    restored = kerasdl.regularizers.get(
        keras.saving.serialize_keras_object(keras_orthogonal)
    )
    assert type(restored) is keras.regularizers.OrthogonalRegularizer


@pytest.mark.parametrize(
    "identifier, cls",
    [
        ("l1l2", L1L2),
        ("orthogonal_regularizer", OrthogonalRegularizer),
        ("OrthogonalRegularizer", OrthogonalRegularizer),
        ({"class_name": "OrthogonalRegularizer", "config": {"factor": 0.1}}, None),
        (L2, L2),
        (OrthogonalRegularizer, OrthogonalRegularizer),
    ],
)
def test_get_resolves_every_keras_name_and_classes_to_kerasdl(identifier, cls):
    # Keras' `get` instantiates a class it is given; ours returned the class.
    regularizer = kerasdl.regularizers.get(identifier)
    assert type(regularizer) is (cls or OrthogonalRegularizer)


def test_serialize_deserialize_round_trip():
    regularizer = OrthogonalRegularizer(factor=0.2, mode="columns")
    config = kerasdl.regularizers.serialize(regularizer)
    for deserialize in (kerasdl.regularizers.deserialize, keras.regularizers.get):
        restored = deserialize(config)
        assert type(restored) is OrthogonalRegularizer
        assert restored.get_config() == {"factor": 0.2, "mode": "columns"}
    short = {"class_name": "L1L2", "config": {"l1": 0.5}}
    assert type(kerasdl.regularizers.deserialize(short)) is L1L2
    assert isinstance(L2(), kerasdl.regularizers.Regularizer)


def test_get_refuses_unknown_names():
    with pytest.raises(ValueError, match="Received: identifier='l3'"):
        kerasdl.regularizers.get("l3")
    with pytest.raises(ValueError, match="Received: identifier=3"):
        kerasdl.regularizers.get(3)


def test_adam_step_with_l2_differs_from_decoupled_weight_decay():
    # ...and the equality is special to plain SGD: Adam rescales the L2
    # gradient per weight, decoupled decay does not.
    l2, lr = 0.05, 0.1
    coupled = _train_dense(L2(l2), keras.optimizers.Adam(lr))
    decoupled = _train_dense(None, keras.optimizers.AdamW(lr, weight_decay=2 * l2))
    assert np.abs(coupled - decoupled).max() > 1e-3


def _orthogonal_penalty_numpy(w, factor, mode):
    vectors = w if mode == "rows" else w.T
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosines = unit @ unit.T
    n = len(vectors)
    return factor * np.abs(cosines * (1 - np.eye(n))).sum() / (n * (n - 1))


@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_penalty_matches_numpy_and_keras(mode):
    w = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    ours = _value(OrthogonalRegularizer(factor=0.3, mode=mode), w)
    keras_value = float(
        keras.ops.convert_to_numpy(
            # A tensor: Keras' columns mode fails on a NumPy array.
            keras.regularizers.OrthogonalRegularizer(factor=0.3, mode=mode)(
                keras.ops.convert_to_tensor(w)
            )
        )
    )
    assert ours == pytest.approx(_orthogonal_penalty_numpy(w, 0.3, mode), rel=1e-5)
    assert ours == pytest.approx(keras_value, rel=1e-5)


def test_orthogonal_penalty_is_zero_for_orthogonal_and_factor_for_parallel():
    assert _value(OrthogonalRegularizer(0.5), np.eye(3, dtype="float32")) == 0
    parallel = np.array([[1.0, 2.0], [2.0, 4.0], [-3.0, -6.0]], "float32")
    assert _value(OrthogonalRegularizer(0.5), parallel) == pytest.approx(0.5)
    # One vector, and the zero vector, add nothing (Keras: NaN for one row).
    assert _value(OrthogonalRegularizer(0.5), np.ones((1, 4), "float32")) == 0
    with_zero_row = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], "float32")
    assert _value(OrthogonalRegularizer(0.5), with_zero_row) == 0


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="gradients via tf.GradientTape"
)
def test_orthogonal_gradient_is_finite_at_a_zero_row():
    import tensorflow as tf

    w = tf.Variable([[0.0, 0.0], [1.0, 0.5], [0.5, 1.0]])
    with tf.GradientTape() as tape:
        penalty = OrthogonalRegularizer(0.1)(w)
    assert np.all(np.isfinite(tape.gradient(penalty, w).numpy()))


def test_orthogonal_regularizer_trains_in_a_saved_model(tmp_path):
    regularizer = OrthogonalRegularizer(factor=0.1, mode="columns")
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, kernel_regularizer=regularizer)]
    )
    model.compile("sgd", "mse")
    x = np.ones((8, 4), "float32")
    history = model.fit(x, np.zeros((8, 3), "float32"), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path).layers[0].kernel_regularizer
    assert type(restored) is OrthogonalRegularizer
    assert restored.get_config() == {"factor": 0.1, "mode": "columns"}


def test_orthogonal_regularizer_refuses_bad_arguments():
    with pytest.raises(ValueError, match="Received: factor=-1"):
        OrthogonalRegularizer(factor=-1)
    with pytest.raises(ValueError, match="Received: mode=diagonal"):
        OrthogonalRegularizer(mode="diagonal")
    with pytest.raises(ValueError, match=r"Received: inputs.shape=\(2, 2, 2\)"):
        OrthogonalRegularizer()(np.ones((2, 2, 2), "float32"))
