import csv
import importlib.util
import logging
import os

import keras
import numpy as np
import pytest

from kerasdl.callbacks import GradientStatistics

RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 4)).astype("float32")
Y = RNG.normal(size=(32, 1)).astype("float32")


def _two_layer_model(regularizer=None, jit_compile=False, learning_rate=0.01):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(
        3, activation="tanh", kernel_regularizer=regularizer, name="hidden"
    )(inputs)
    outputs = keras.layers.Dense(1, name="head")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss="mse",
        jit_compile=jit_compile,
    )
    return model


def _sequential(*layers, units=1):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), *layers, keras.layers.Dense(units)])
    # A zero learning rate keeps the weights the tests set.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    return model


def _fit(model, callback, epochs=1, batch_size=8, x=X, y=Y):
    model.fit(
        x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[callback]
    )
    return callback.history


def _analytic_gradients(model, x, y, l2=0.0):
    """Gradients of mean((tanh(x W1 + b1) W2 + b2 - y)^2) + l2 * sum(W1^2), in NumPy."""
    w1, b1, w2, b2 = (w.astype("float64") for w in model.get_weights())
    x, y = x.astype("float64"), y.astype("float64")
    hidden = np.tanh(x @ w1 + b1)  # (batch, 3)
    d_pred = 2 * (hidden @ w2 + b2 - y) / y.size  # (batch, 1)
    d_pre = (d_pred @ w2.T) * (1 - hidden**2)  # (batch, 3)
    return {
        "hidden/kernel": x.T @ d_pre + 2 * l2 * w1,
        "hidden/bias": d_pre.sum(axis=0),
        "head/kernel": hidden.T @ d_pred,
        "head/bias": d_pred.sum(axis=0),
    }


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_norms_equal_hand_computed_gradient(l2):
    model = _two_layer_model(regularizer=keras.regularizers.L2(l2) if l2 else None)
    history = _fit(model, GradientStatistics(probe_data=(X[:16], Y[:16])))
    expected = _analytic_gradients(model, X[:16], Y[:16], l2=l2)
    norms = history[-1]["gradient_norms"]
    assert sorted(norms) == sorted(expected)
    for path, gradient in expected.items():
        np.testing.assert_allclose(norms[path], np.linalg.norm(gradient), rtol=1e-5)


def test_saturated_fraction_of_bounded_activations():
    layers = [
        keras.layers.Dense(4, activation="sigmoid", name="sigmoid"),
        keras.layers.Dense(4, name="linear"),
        keras.layers.Activation("tanh", name="tanh"),
        keras.layers.Dense(4, activation="softsign", name="softsign"),
    ]
    model = _sequential(*layers)
    # Pre-activations far beyond the bounds for 2 of 4 units, zero for the others.
    layers[0].set_weights([np.zeros((4, 4)), np.array([20.0, -20.0, 0.0, 0.0])])
    layers[1].set_weights([np.zeros((4, 4)), np.array([5.0, -5.0, 0.0, 0.0])])
    layers[3].set_weights([np.zeros((4, 4)), np.array([0.0, 0.0, 0.0, -500.0])])
    stats = _fit(model, GradientStatistics(probe_data=(X, Y)))[-1]["layers"]
    assert stats["sigmoid"]["saturated"] == pytest.approx(0.5)
    assert stats["linear"]["saturated"] is None
    assert stats["tanh"]["saturated"] == pytest.approx(0.5)
    assert stats["softsign"]["saturated"] == pytest.approx(0.25)
    assert stats["sigmoid"]["mean"] == pytest.approx(0.5, abs=1e-6)
    assert stats["tanh"]["std"] == pytest.approx(np.std([1, -1, 0, 0]), abs=1e-3)


def test_dead_fraction_of_rectifiers():
    layers = [
        keras.layers.Dense(4, activation="relu", name="relu"),
        keras.layers.Dense(4, name="linear"),
        keras.layers.ReLU(name="relu_layer"),
        keras.layers.Dense(4, name="linear_2"),
        keras.layers.LeakyReLU(name="leaky"),
    ]
    model = _sequential(*layers)
    kernel = RNG.normal(size=(4, 4)).astype("float32")
    # Units 0 and 1 get a bias so negative that no input of X turns them on.
    layers[0].set_weights([kernel, np.array([-100.0, -100.0, 0.0, 0.0])])
    layers[1].set_weights([kernel, np.array([-100.0, 0.0, 0.0, 0.0])])
    layers[3].set_weights([kernel, np.array([-100.0, 0.0, 0.0, 0.0])])
    stats = _fit(model, GradientStatistics(probe_data=(X, Y)))[-1]["layers"]
    assert stats["relu"]["dead"] == pytest.approx(0.5)
    assert stats["relu_layer"]["dead"] == pytest.approx(0.25)
    assert stats["leaky"]["dead"] is None  # never exactly zero
    assert stats["linear"]["dead"] is None
    assert stats["relu"]["saturated"] is None


def test_dead_units_of_a_convolution_are_channels():
    keras.utils.set_random_seed(0)
    conv = keras.layers.Conv2D(4, 3, activation="relu", name="conv")
    model = keras.Sequential(
        [keras.Input((6, 6, 1)), conv, keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    kernel = np.abs(RNG.normal(size=(3, 3, 1, 4))).astype("float32")
    conv.set_weights([kernel, np.array([-1e3, 0.0, 0.0, 0.0])])
    images = np.abs(RNG.normal(size=(8, 6, 6, 1))).astype("float32")
    callback = GradientStatistics(probe_data=(images, Y[:8]))
    stats = _fit(model, callback, x=images, y=Y[:8])[-1]["layers"]
    assert stats["conv"]["dead"] == pytest.approx(0.25)


def test_history_has_one_record_per_probe_epoch():
    model = _two_layer_model()
    history = _fit(model, GradientStatistics((X, Y), every_n_epochs=2), epochs=5)
    # 4 steps per epoch: probes after epochs 2 and 4 (0-based 1 and 3).
    assert [(r["epoch"], r["step"]) for r in history] == [(1, 8), (3, 16)]
    assert set(history[0]) == {"epoch", "step", "gradient_norms", "layers"}
    assert set(history[0]["layers"]) == {"hidden", "head"}
    assert set(history[0]["layers"]["hidden"]) == {"mean", "std", "saturated", "dead"}
    # The weights change between probes, and so do the gradients.
    assert history[0]["gradient_norms"] != history[1]["gradient_norms"]


def test_every_n_steps_counts_optimizer_steps_across_fits():
    model = _two_layer_model()
    callback = GradientStatistics((X, Y), every_n_steps=3)
    history = _fit(model, callback, epochs=2)
    assert [(r["epoch"], r["step"]) for r in history] == [(0, 3), (1, 6)]
    history = _fit(model, callback, epochs=1)  # steps 9 .. 12
    assert [(r["epoch"], r["step"]) for r in history] == [(0, 9), (0, 12)]


def test_writes_csv_and_png(tmp_path):
    model = _two_layer_model()
    callback = GradientStatistics((X, Y), log_dir=tmp_path)
    history = _fit(model, callback, epochs=2)
    with open(tmp_path / "gradient_statistics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # Per probe: 4 gradient norms, 2 layers x (mean, std), tanh's saturation.
    assert len(rows) == 2 * (4 + 2 * 2 + 1)
    assert set(rows[0]) == {"epoch", "step", "kind", "name", "statistic", "value"}
    row = next(r for r in rows if r["epoch"] == "1" and r["name"] == "head/kernel")
    assert row["kind"] == "variable" and row["statistic"] == "gradient_norm"
    assert float(row["value"]) == pytest.approx(
        history[1]["gradient_norms"]["head/kernel"]
    )
    assert {r["statistic"] for r in rows if r["name"] == "hidden"} == {
        "mean",
        "std",
        "saturated",
    }
    if importlib.util.find_spec("matplotlib") is not None:
        with open(tmp_path / "gradient_norms.png", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("jit_compile", [False, True])
def test_writes_tensorboard_scalars_and_histograms(tmp_path, jit_compile):
    tf = pytest.importorskip("tensorflow")
    callback = GradientStatistics((X, Y), log_dir=tmp_path)
    history = _fit(_two_layer_model(jit_compile=jit_compile), callback, epochs=2)
    (events,) = os.listdir(tmp_path / "gradient_statistics")
    values = {}
    for event in tf.compat.v1.train.summary_iterator(
        str(tmp_path / "gradient_statistics" / events)
    ):
        for value in event.summary.value:
            values[(event.step, value.tag)] = tf.make_ndarray(value.tensor)
    step = history[-1]["step"]
    assert values[(step, "gradient_norm/head/kernel")] == pytest.approx(
        history[-1]["gradient_norms"]["head/kernel"]
    )
    assert values[(step, "saturated/hidden")] == pytest.approx(
        history[-1]["layers"]["hidden"]["saturated"]
    )
    # Histograms: 30 buckets [left, right, count] over all the values.
    buckets = values[(step, "gradient/hidden/kernel")]
    assert buckets.shape == (30, 3) and buckets[:, 2].sum() == 4 * 3
    buckets = values[(step, "output/hidden")]
    assert buckets[:, 2].sum() == X.size // 4 * 3
    np.testing.assert_allclose(buckets[1:, 0], buckets[:-1, 1], rtol=1e-6)


def test_histograms_can_be_left_out(tmp_path):
    tf = pytest.importorskip("tensorflow")
    callback = GradientStatistics((X, Y), log_dir=tmp_path, histograms=False)
    _fit(_two_layer_model(), callback)
    (events,) = os.listdir(tmp_path / "gradient_statistics")
    tags = {
        value.tag
        for event in tf.compat.v1.train.summary_iterator(
            str(tmp_path / "gradient_statistics" / events)
        )
        for value in event.summary.value
    }
    assert "gradient_norm/hidden/kernel" in tags
    assert not any(tag.startswith(("gradient/", "output/")) for tag in tags)


def test_without_tensorflow_skips_tensorboard_with_a_warning(tmp_path, caplog):
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed")
    with caplog.at_level(logging.WARNING):
        _fit(_two_layer_model(), GradientStatistics((X, Y), log_dir=tmp_path))
    assert "TensorBoard" in caplog.text
    assert (tmp_path / "gradient_statistics.csv").exists()


def test_jit_compiled_model_gives_the_same_norms():
    plain = _fit(_two_layer_model(), GradientStatistics((X, Y)))
    compiled = _fit(_two_layer_model(jit_compile=True), GradientStatistics((X, Y)))
    for path, norm in plain[-1]["gradient_norms"].items():
        assert compiled[-1]["gradient_norms"][path] == pytest.approx(norm, rel=1e-5)


def test_sequential_and_functional_models():
    sequential = _sequential(keras.layers.Dense(3, activation="tanh", name="hidden"))
    records = _fit(sequential, GradientStatistics((X, Y)))
    assert set(records[-1]["layers"]) == {"hidden", sequential.layers[-1].name}

    # Two inputs given as a dict, and a nested Sequential block.
    keras.utils.set_random_seed(0)
    a, b = keras.Input((4,), name="a"), keras.Input((2,), name="b")
    block = keras.Sequential([keras.layers.Dense(3, activation="relu")], name="block")
    merged = keras.layers.Concatenate(name="merge")([block(a), b])
    functional = keras.Model(
        {"a": a, "b": b}, keras.layers.Dense(1, name="out")(merged)
    )
    functional.compile(optimizer="sgd", loss="mse")
    x = {"a": X, "b": X[:, :2]}
    records = _fit(functional, GradientStatistics((x, Y)), x=x)
    assert set(records[-1]["layers"]) == {"block", "merge", "out"}
    # A nested model is one layer, with no activation of its own.
    assert records[-1]["layers"]["block"]["dead"] is None
    assert records[-1]["layers"]["block"]["mean"] > 0
    assert all(n > 0 for n in records[-1]["gradient_norms"].values())


def test_probe_changes_no_state():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activity_regularizer="l2"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, Y, epochs=1, verbose=0)
    before = [np.array(w) for w in model.get_weights()]
    callback = GradientStatistics((X, Y), training=True)
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_end(0)
    callback.on_epoch_end(1)
    for after, weight in zip(model.get_weights(), before):
        np.testing.assert_array_equal(after, weight)
    assert len(callback.history) == 2


def test_subclassed_model_is_refused():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

    model = Subclassed()
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="Functional or Sequential"):
        model.fit(X, Y, verbose=0, callbacks=[GradientStatistics((X, Y))])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"probe_data": X}, r"must be a tuple \(x, y\)"),
        ({"probe_data": (X,)}, r"must be a tuple \(x, y\)"),
        ({"probe_data": (X, None)}, "needs both x and y"),
        ({"probe_data": (X, Y[:10])}, "same non-zero number of samples"),
        ({"probe_data": ({"a": X, "b": X[:3]}, Y)}, "same non-zero number"),
        ({"probe_data": (X, Y, np.ones(5))}, "same non-zero number"),
        ({"probe_data": (X, Y), "every_n_epochs": 0}, "every_n_epochs=0"),
        ({"probe_data": (X, Y), "every_n_steps": 1.5}, "every_n_steps=1.5"),
        (
            {"probe_data": (X, Y), "every_n_epochs": 1, "every_n_steps": 2},
            "not both",
        ),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GradientStatistics(**kwargs)


def test_get_config_round_trip():
    callback = GradientStatistics(
        (X, Y), every_n_steps=5, training=True, log_dir="logs", histograms=False
    )
    config = callback.get_config()
    assert config == {
        "every_n_epochs": None,
        "every_n_steps": 5,
        "training": True,
        "log_dir": "logs",
        "histograms": False,
    }
    with pytest.raises(ValueError, match="probe_data"):
        GradientStatistics.from_config(config)
    clone = GradientStatistics.from_config({**config, "probe_data": (X, Y)})
    assert clone.get_config() == config


def test_recompiled_model_is_probed_with_its_new_loss():
    model = _two_layer_model()
    callback = GradientStatistics((X, Y))
    mse = _fit(model, callback)[-1]["gradient_norms"]["head/bias"]
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mae")
    mae = _fit(model, callback)[-1]["gradient_norms"]["head/bias"]
    # d mean|r| / d b2 = mean(sign(r)).
    w1, b1, w2, b2 = model.get_weights()
    residual = np.tanh(X @ w1 + b1) @ w2 + b2 - Y
    assert mae == pytest.approx(abs(np.sign(residual).mean()), abs=1e-6)
    assert mae != pytest.approx(mse)
