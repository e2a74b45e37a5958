"""kerasdl.layers.LSTM: keras.layers.LSTM with a fused loop and backward pass.

The layer must compute what `keras.layers.LSTM` computes with the same
weights: outputs, final states and the gradients with respect to the
inputs, the initial states and every weight, eager and compiled, and fall
back to Keras' implementation wherever its fast path does not apply.
"""

import importlib
import os
import tempfile

import keras
import numpy as np
import pytest
from keras import ops

import kerasdl.layers as kl
from kerasdl.testing import compiled, run_layer_test

BACKEND = keras.backend.backend()
BATCH, TIME, FEATURES, UNITS = 3, 5, 4, 6


def _pair(weight_dropout=0.0, **kwargs):
    """A kerasdl LSTM and a keras LSTM holding the same (non-trivial) weights."""
    layer = kl.LSTM(UNITS, weight_dropout=weight_dropout, **kwargs)
    reference = keras.layers.LSTM(UNITS, **kwargs)
    layer.build((None, None, FEATURES))
    reference.build((None, None, FEATURES))
    rng = np.random.default_rng(0)
    weights = [0.5 * rng.normal(size=w.shape) for w in reference.get_weights()]
    layer.set_weights(weights)
    reference.set_weights(weights)
    return layer, reference


def _inputs(seed=1, batch=BATCH, time=TIME):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, time, FEATURES)).astype("float32")
    h0 = rng.normal(size=(batch, UNITS)).astype("float32")
    c0 = rng.normal(size=(batch, UNITS)).astype("float32")
    return x, h0, c0


def _numpy(values):
    return [ops.convert_to_numpy(v) for v in values]


def _assert_all_close(actual, expected, atol=1e-5):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, atol=atol, rtol=atol)


def _gradients(layer, x, h0, c0, upstream, jit=False, training=False):
    """Outputs and d(sum(outputs * upstream))/d(x, h0, c0, weights)."""
    weights = layer.trainable_variables
    frozen = [ops.convert_to_numpy(w) for w in layer.non_trainable_variables]

    def loss(x, h0, c0, values):
        outputs, _ = layer.stateless_call(
            values, frozen, x, initial_state=[h0, c0], training=training
        )
        total = sum(ops.sum(y * u) for y, u in zip(outputs, upstream) if u is not None)
        return total, outputs

    values = [ops.convert_to_tensor(ops.convert_to_numpy(w)) for w in weights]
    if BACKEND == "jax":
        import jax

        fn = jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True)
        fn = jax.jit(fn) if jit else fn
        (_, outputs), (dx, dh0, dc0, dw) = fn(x, h0, c0, values)
        return _numpy(outputs), _numpy([dx, dh0, dc0, *dw])

    import tensorflow as tf

    def step(x, h0, c0, values):
        with tf.GradientTape() as tape:
            tape.watch([x, h0, c0, *values])
            total, outputs = loss(x, h0, c0, values)
        grads = tape.gradient(total, [x, h0, c0, *values])
        return outputs, grads

    if jit == "xla_static":  # known time, as `fit` traces fixed-size batches
        step = tf.function(step, jit_compile=True)
    elif jit is not False:  # unknown batch and time, as the exports trace
        specs = [
            tf.TensorSpec((None, None, FEATURES), "float32"),
            tf.TensorSpec((None, UNITS), "float32"),
            tf.TensorSpec((None, UNITS), "float32"),
            [tf.TensorSpec(v.shape, v.dtype) for v in values],
        ]
        step = tf.function(step, input_signature=specs, jit_compile=jit == "xla")
    outputs, grads = step(tf.constant(x), tf.constant(h0), tf.constant(c0), values)
    return _numpy(outputs), _numpy(grads)


def test_layer_contract():
    run_layer_test(
        kl.LSTM,
        {"units": 4, "return_sequences": True},
        input_shape=(2, 3, 5),
        expected_output_shape=(2, 3, 4),
        expected_num_trainable_weights=3,
    )


def test_fast_path_is_taken_by_default():
    layer, _ = _pair()
    assert layer._fast_path(None, training=True)


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("with_initial_state", [True, False])
def test_outputs_and_states_equal_keras(return_sequences, with_initial_state):
    kwargs = {"return_sequences": return_sequences, "return_state": True}
    layer, reference = _pair(**kwargs)
    x, h0, c0 = _inputs()
    state = {"initial_state": [h0, c0]} if with_initial_state else {}
    expected = _numpy(reference(x, **state))
    _assert_all_close(_numpy(layer(x, **state)), expected)
    _assert_all_close(_numpy(compiled(lambda x: layer(x, **state))(x)), expected)


def test_output_without_return_state_equals_keras():
    layer, reference = _pair()
    x, _, _ = _inputs()
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), ops.convert_to_numpy(reference(x)), atol=1e-5
    )


def test_gradients_equal_autodiff(compile_mode):  # conftest.py: every mode
    kwargs = {"return_sequences": True, "return_state": True}
    layer, reference = _pair(**kwargs)
    x, h0, c0 = _inputs()
    rng = np.random.default_rng(2)
    upstream = [
        rng.normal(size=(BATCH, TIME, UNITS)).astype("float32"),
        rng.normal(size=(BATCH, UNITS)).astype("float32"),
        rng.normal(size=(BATCH, UNITS)).astype("float32"),
    ]
    outputs, grads = _gradients(layer, x, h0, c0, upstream, jit=compile_mode)
    expected_outputs, expected_grads = _gradients(reference, x, h0, c0, upstream)
    _assert_all_close(outputs, expected_outputs)
    assert len(grads) == 3 + 3  # x, h0, c0, kernel, recurrent_kernel, bias
    _assert_all_close(grads, expected_grads)


@pytest.mark.parametrize("used", ["last_output", "cell_state", "sequence"])
def test_gradients_when_only_some_outputs_are_used(used):
    # The other outputs get no upstream gradient (None on TensorFlow).
    layer, reference = _pair(return_sequences=used == "sequence", return_state=True)
    x, h0, c0 = _inputs(seed=3)
    rng = np.random.default_rng(4)
    shape = (BATCH, TIME, UNITS) if used == "sequence" else (BATCH, UNITS)
    up = rng.normal(size=shape).astype("float32")
    upstream = {
        "last_output": [up, None, None],
        "cell_state": [None, None, up],
        "sequence": [up, None, None],
    }[used]
    outputs, grads = _gradients(layer, x, h0, c0, upstream, jit=True)
    expected_outputs, expected_grads = _gradients(reference, x, h0, c0, upstream)
    _assert_all_close(outputs, expected_outputs)
    _assert_all_close(grads, expected_grads)


def test_one_step_sequences():
    # Generation runs the layer on one token at a time from cached states.
    layer, reference = _pair(return_sequences=True, return_state=True)
    x, h0, c0 = _inputs(time=1)
    up = [np.ones((BATCH, 1, UNITS), "float32"), None, None]
    outputs, grads = _gradients(layer, x, h0, c0, up, jit=True)
    expected_outputs, expected_grads = _gradients(reference, x, h0, c0, up)
    _assert_all_close(outputs, expected_outputs)
    _assert_all_close(grads, expected_grads)


FALLBACKS = {
    "mask": ({}, {"mask": np.array([[1, 1, 1, 0, 0]] * BATCH, bool)}),
    "dropout_training": ({"dropout": 0.5, "seed": 1}, {"training": True}),
    "recurrent_dropout_training": (
        {"recurrent_dropout": 0.5, "seed": 1},
        {"training": True},
    ),
    "go_backwards": ({"go_backwards": True}, {}),
    "unroll": ({"unroll": True}, {}),
    "no_bias": ({"use_bias": False}, {}),
    "relu": ({"activation": "relu"}, {}),
    "hard_sigmoid": ({"recurrent_activation": "hard_sigmoid"}, {}),
}


@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_fallback_paths_equal_keras(case):
    kwargs, call_kwargs = FALLBACKS[case]
    layer, reference = _pair(return_sequences=True, **kwargs)
    assert not layer._fast_path(call_kwargs.get("mask"), call_kwargs.get("training"))
    x, _, _ = _inputs()
    if "dropout" in case:
        # Same seed, same masks: both layers draw them the same way.
        keras.utils.set_random_seed(5)
        expected = ops.convert_to_numpy(reference(x, **call_kwargs))
        keras.utils.set_random_seed(5)
        actual = ops.convert_to_numpy(layer(x, **call_kwargs))
    else:
        expected = ops.convert_to_numpy(reference(x, **call_kwargs))
        actual = ops.convert_to_numpy(layer(x, **call_kwargs))
    np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_stateful_falls_back_and_equals_keras():
    layer = kl.LSTM(UNITS, stateful=True, return_sequences=True)
    reference = keras.layers.LSTM(UNITS, stateful=True, return_sequences=True)
    x, _, _ = _inputs()
    layer.build(x.shape)
    reference.build(x.shape)
    reference.set_weights(layer.get_weights())
    assert not layer._fast_path(None, False)
    for _ in range(2):  # the second call starts from the first's states
        np.testing.assert_allclose(
            ops.convert_to_numpy(layer(x)),
            ops.convert_to_numpy(reference(x)),
            atol=1e-5,
        )


def test_dropout_outside_training_uses_the_fast_path():
    layer, reference = _pair(dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    assert layer._fast_path(None, False)
    x, _, _ = _inputs()
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x, training=False)),
        ops.convert_to_numpy(reference(x, training=False)),
        atol=1e-5,
    )


def test_mixed_precision_equals_keras():
    layer, reference = _pair(return_sequences=True, dtype="mixed_float16")
    x, _, _ = _inputs()
    actual = layer(x)
    assert keras.backend.standardize_dtype(actual.dtype) == "float16"
    np.testing.assert_allclose(
        ops.convert_to_numpy(actual).astype("float32"),
        ops.convert_to_numpy(reference(x)).astype("float32"),
        atol=2e-3,
    )


def test_positional_arguments_mean_what_they_mean_in_keras():
    # keras.layers.LSTM(4, "relu", "hard_sigmoid") sets the two activations;
    # `weight_dropout` must not take the place of `activation`.
    layer = kl.LSTM(4, "relu", "hard_sigmoid")
    reference = keras.layers.LSTM(4, "relu", "hard_sigmoid")
    config = layer.get_config()
    assert config["activation"] == reference.get_config()["activation"] == "relu"
    assert config["recurrent_activation"] == "hard_sigmoid"
    assert layer.weight_dropout == 0.0


def test_config_equals_keras_and_round_trips():
    kwargs = {"return_sequences": True, "return_state": True, "dropout": 0.1}
    layer, reference = _pair(name="lstm", **kwargs)
    assert layer.get_config() == {**reference.get_config(), "weight_dropout": 0.0}
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is kl.LSTM
    assert revived.get_config() == layer.get_config()
    assert keras.saving.get_registered_name(kl.LSTM) == "kerasdl>LSTM"


def test_weight_dropout_is_off_outside_training():
    layer, reference = _pair(weight_dropout=0.5, return_sequences=True)
    x, _, _ = _inputs()
    for training in (False, None):
        np.testing.assert_allclose(
            ops.convert_to_numpy(layer(x, training=training)),
            ops.convert_to_numpy(reference(x)),
            atol=1e-5,
        )


def test_weight_dropout_equals_keras_with_the_dropped_recurrent_kernel():
    layer, reference = _pair(weight_dropout=0.4, seed=7, return_sequences=True)
    x, h0, c0 = _inputs()
    generator = layer.cell.seed_generator
    state = ops.convert_to_numpy(generator.state)
    actual = ops.convert_to_numpy(layer(x, initial_state=[h0, c0], training=True))
    # The same draw again, from the same generator state.
    generator.state.assign(state)
    recurrent_kernel = ops.convert_to_tensor(layer.cell.recurrent_kernel)
    dropped = keras.random.dropout(recurrent_kernel, 0.4, seed=generator)
    dropped = ops.convert_to_numpy(dropped)
    kept = dropped != 0
    assert 0.45 < kept.mean() < 0.75  # (6, 24) entries, 60% kept on average
    np.testing.assert_allclose(
        dropped[kept],
        ops.convert_to_numpy(layer.cell.recurrent_kernel)[kept] / 0.6,
        rtol=1e-6,
    )
    kernel, _, bias = reference.get_weights()
    reference.set_weights([kernel, dropped, bias])
    expected = ops.convert_to_numpy(reference(x, initial_state=[h0, c0]))
    np.testing.assert_allclose(actual, expected, atol=1e-5)
    # A new mask on the next training call.
    again = ops.convert_to_numpy(layer(x, initial_state=[h0, c0], training=True))
    assert np.abs(again - actual).max() > 1e-3


def test_weight_dropout_gradient_is_zero_where_dropped():
    keras.utils.set_random_seed(3)
    units = 32
    layer = kl.LSTM(units, weight_dropout=0.5, return_sequences=True, return_state=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, FEATURES)).astype("float32")
    h0, c0 = rng.normal(size=(2, 4, units)).astype("float32")
    layer.build(x.shape)
    upstream = [rng.normal(size=(4, 6, units)).astype("float32"), None, None]
    _, (_, _, _, d_kernel, d_recurrent, _) = _gradients(
        layer, x, h0, c0, upstream, training=True
    )
    assert 0.4 < np.mean(d_recurrent == 0.0) < 0.6  # 32 x 128 entries, half dropped
    assert np.all(d_kernel != 0.0)  # the input kernel is not


@pytest.mark.parametrize(
    "jit_compile", [False, True] if BACKEND == "tensorflow" else ["auto"]
)
def test_weight_dropout_trains_in_fit(jit_compile):
    tokens = np.random.default_rng(0).integers(0, 10, size=(32, 1)) + np.arange(9)
    tokens = (tokens % 10).astype("int32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(10, 8),
            kl.LSTM(16, weight_dropout=0.3, return_sequences=True),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        keras.optimizers.Adam(3e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    history = model.fit(tokens[:, :-1], tokens[:, 1:], epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weight_dropout": 1.0},
        {"weight_dropout": -0.1},
        {"weight_dropout": True},
        {"weight_dropout": "0.3"},
    ],
)
def test_weight_dropout_rejects_bad_rates(kwargs):
    with pytest.raises(ValueError, match="`weight_dropout` must be a float in"):
        kl.LSTM(4, **kwargs)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"dropout": 0.1}, "dropout"),
        ({"recurrent_dropout": 0.1}, "recurrent_dropout"),
        ({"go_backwards": True}, "go_backwards"),
        ({"unroll": True}, "unroll"),
        ({"stateful": True}, "stateful"),
        ({"use_bias": False}, "use_bias"),
        ({"activation": "relu"}, "activation"),
    ],
)
def test_weight_dropout_refuses_settings_of_keras_path(kwargs, name):
    with pytest.raises(ValueError, match=f"Received other values for: {name}$"):
        kl.LSTM(4, weight_dropout=0.3, **kwargs)


def test_weight_dropout_refuses_a_mask_in_training():
    layer = kl.LSTM(4, weight_dropout=0.3)
    x, _, _ = _inputs()
    mask = np.ones((BATCH, TIME), bool)
    layer(x, mask=mask)  # inference: Keras' path, no weight dropout to apply
    with pytest.raises(ValueError, match="takes no mask"):
        layer(x, mask=mask, training=True)


def test_same_weight_names_as_keras():
    layer, reference = _pair()
    assert [w.path.split("/", 1)[1] for w in layer.weights] == [
        w.path.split("/", 1)[1] for w in reference.weights
    ]


def _tiny_model(recurrent=kl.LSTM):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(10, 8),
            recurrent(16, return_sequences=True),
            recurrent(16, return_sequences=True),
            keras.layers.Dense(10),
        ]
    )


@pytest.mark.parametrize(
    "jit_compile", [False, True] if BACKEND == "tensorflow" else ["auto"]
)
def test_fit_lowers_the_loss_as_keras_does(jit_compile):
    # Learnable: the next token is the current one plus one.
    tokens = np.random.default_rng(0).integers(0, 10, size=(32, 1)) + np.arange(9)
    tokens = (tokens % 10).astype("int32")
    losses = []
    for recurrent in (kl.LSTM, keras.layers.LSTM):
        model = _tiny_model(recurrent)
        model.compile(
            keras.optimizers.Adam(3e-2),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
        history = model.fit(tokens[:, :-1], tokens[:, 1:], epochs=20, verbose=0)
        losses.append(history.history["loss"])
    assert losses[0][-1] < 0.5 * losses[0][0]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-3)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="SavedModel export")
def test_saved_model_export():
    import tensorflow as tf

    model = _tiny_model()
    tokens = np.random.default_rng(1).integers(0, 10, size=(2, 7)).astype("int32")
    expected = ops.convert_to_numpy(model(tokens))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "export")
        model.export(path, verbose=False)
        restored = tf.saved_model.load(path)
        np.testing.assert_allclose(restored.serve(tokens).numpy(), expected, atol=1e-5)
        # Unknown batch and time: other shapes run through the same signature.
        np.testing.assert_allclose(
            restored.serve(tokens[:1, :3]).numpy(), expected[:1, :3], atol=1e-5
        )


@pytest.fixture
def fused_language_models(monkeypatch):
    """An LSTM language model as it is and one built with kerasdl's LSTM."""
    from kerasdl.models import RNNLanguageModel

    module = importlib.import_module("kerasdl.models.rnn_language_model")

    def build():
        keras.utils.set_random_seed(0)
        model = RNNLanguageModel(12, units=8, num_layers=2, embedding_dim=4)
        model(np.zeros((1, 1), "int32"))
        return model

    reference = build()
    monkeypatch.setitem(module.CELLS, "lstm", kl.LSTM)
    model = build()
    assert isinstance(model.recurrent_layers[0], kl.LSTM)
    return model, reference


def test_language_model_weights_and_logits_unchanged(fused_language_models, tmp_path):
    model, reference = fused_language_models
    # The same weight paths below the model's own name, so checkpoints load.
    assert [w.path.split("/", 1)[1] for w in model.weights] == [
        w.path.split("/", 1)[1] for w in reference.weights
    ]
    reference.save_weights(tmp_path / "reference.weights.h5")
    model.load_weights(tmp_path / "reference.weights.h5")
    tokens = np.random.default_rng(0).integers(0, 12, size=(2, 9)).astype("int32")
    expected = ops.convert_to_numpy(reference(tokens))
    np.testing.assert_allclose(ops.convert_to_numpy(model(tokens)), expected, atol=1e-5)
    # The cached steps: a prompt of 5 tokens, then one token at a time.
    logits, cache = model.call_with_cache(tokens[:, :5], model.initial_cache(2), 0)
    steps = [logits]
    for t in range(5, 9):
        logits, cache = compiled(model.call_with_cache)(tokens[:, t : t + 1], cache, t)
        steps.append(logits)
    np.testing.assert_allclose(
        ops.convert_to_numpy(ops.concatenate(steps, axis=1)), expected, atol=1e-5
    )


@pytest.mark.skipif(BACKEND != "tensorflow", reason="SavedModel export")
def test_language_model_export_generates_as_eager(fused_language_models, tmp_path):
    import tensorflow as tf

    from kerasdl.data.timemachine import Vocabulary, tokenize
    from kerasdl.export.language_model import TextLanguageModel, export_language_model

    model, _ = fused_language_models
    vocabulary = Vocabulary.build(tokenize("the time traveller", "char"))
    assert vocabulary.size <= 12
    text_model = TextLanguageModel(model, vocabulary, "char", max_sequence_length=16)
    path = export_language_model(text_model, tmp_path / "lm")
    reloaded = tf.saved_model.load(path)
    prompts = tf.constant(["the", "", "time travel"])
    options = {"max_length": 6, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
    generated = reloaded.signatures["generate"](
        prompt=prompts,
        seed=tf.constant(3),
        **{key: tf.constant(value) for key, value in options.items()},
    )
    eager = text_model.generate(prompts, seed=3, **options)
    assert generated["continuation"].numpy().tolist() == (
        eager["continuation"].numpy().tolist()
    )
    texts = tf.constant(["the time", "x"])
    np.testing.assert_allclose(
        reloaded.signatures["score"](text=texts)["negative_log_likelihood"].numpy(),
        text_model.score(texts)["negative_log_likelihood"].numpy(),
        rtol=1e-5,
    )
