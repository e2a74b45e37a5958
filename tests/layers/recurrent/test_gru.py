"""kerasdl.layers.GRU: keras.layers.GRU with a fused loop and backward pass.

The layer must compute what `keras.layers.GRU` computes with the same
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


def _pair(**kwargs):
    """A kerasdl GRU and a keras GRU holding the same (non-trivial) weights."""
    layer = kl.GRU(UNITS, **kwargs)
    reference = keras.layers.GRU(UNITS, **kwargs)
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
    return x, h0


def _numpy(values):
    return [ops.convert_to_numpy(v) for v in values]


def _assert_all_close(actual, expected, atol=1e-5):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, atol=atol, rtol=atol)


def _gradients(layer, x, h0, upstream, jit=False):
    """Outputs and d(sum(outputs * upstream))/d(x, h0, weights)."""
    weights = layer.trainable_variables
    frozen = [ops.convert_to_numpy(w) for w in layer.non_trainable_variables]

    def loss(x, h0, values):
        outputs, _ = layer.stateless_call(values, frozen, x, initial_state=[h0])
        total = sum(ops.sum(y * u) for y, u in zip(outputs, upstream) if u is not None)
        return total, outputs

    values = [ops.convert_to_tensor(ops.convert_to_numpy(w)) for w in weights]
    if BACKEND == "jax":
        import jax

        fn = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)
        fn = jax.jit(fn) if jit else fn
        (_, outputs), (dx, dh0, dw) = fn(x, h0, values)
        return _numpy(outputs), _numpy([dx, dh0, *dw])

    import tensorflow as tf

    def step(x, h0, values):
        with tf.GradientTape() as tape:
            tape.watch([x, h0, *values])
            total, outputs = loss(x, h0, values)
        grads = tape.gradient(total, [x, h0, *values])
        return outputs, grads

    if jit == "xla_static":  # known time, as `fit` traces fixed-size batches
        step = tf.function(step, jit_compile=True)
    elif jit is not False:  # unknown batch and time, as the exports trace
        specs = [
            tf.TensorSpec((None, None, FEATURES), "float32"),
            tf.TensorSpec((None, UNITS), "float32"),
            [tf.TensorSpec(v.shape, v.dtype) for v in values],
        ]
        step = tf.function(step, input_signature=specs, jit_compile=jit == "xla")
    outputs, grads = step(tf.constant(x), tf.constant(h0), values)
    return _numpy(outputs), _numpy(grads)


def test_layer_contract():
    run_layer_test(
        kl.GRU,
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
    x, h0 = _inputs()
    state = {"initial_state": [h0]} if with_initial_state else {}
    expected = _numpy(reference(x, **state))
    _assert_all_close(_numpy(layer(x, **state)), expected)
    _assert_all_close(_numpy(compiled(lambda x: layer(x, **state))(x)), expected)


def test_output_without_return_state_equals_keras():
    layer, reference = _pair()
    x, _ = _inputs()
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), ops.convert_to_numpy(reference(x)), atol=1e-5
    )


def test_gradients_equal_autodiff(compile_mode):  # conftest.py: every mode
    kwargs = {"return_sequences": True, "return_state": True}
    layer, reference = _pair(**kwargs)
    x, h0 = _inputs()
    rng = np.random.default_rng(2)
    upstream = [
        rng.normal(size=(BATCH, TIME, UNITS)).astype("float32"),
        rng.normal(size=(BATCH, UNITS)).astype("float32"),
    ]
    outputs, grads = _gradients(layer, x, h0, upstream, jit=compile_mode)
    expected_outputs, expected_grads = _gradients(reference, x, h0, upstream)
    _assert_all_close(outputs, expected_outputs)
    assert len(grads) == 2 + 3  # x, h0, kernel, recurrent_kernel, bias
    _assert_all_close(grads, expected_grads)


@pytest.mark.parametrize("used", ["last_output", "state", "sequence"])
def test_gradients_when_only_some_outputs_are_used(used):
    # The other output gets no upstream gradient (None on TensorFlow).
    layer, reference = _pair(return_sequences=used == "sequence", return_state=True)
    x, h0 = _inputs(seed=3)
    rng = np.random.default_rng(4)
    shape = (BATCH, TIME, UNITS) if used == "sequence" else (BATCH, UNITS)
    up = rng.normal(size=shape).astype("float32")
    upstream = {
        "last_output": [up, None],
        "state": [None, up],
        "sequence": [up, None],
    }[used]
    outputs, grads = _gradients(layer, x, h0, upstream, jit=True)
    expected_outputs, expected_grads = _gradients(reference, x, h0, upstream)
    _assert_all_close(outputs, expected_outputs)
    _assert_all_close(grads, expected_grads)


def test_one_step_sequences():
    # Generation runs the layer on one token at a time from cached states.
    layer, reference = _pair(return_sequences=True, return_state=True)
    x, h0 = _inputs(time=1)
    up = [np.ones((BATCH, 1, UNITS), "float32"), None]
    outputs, grads = _gradients(layer, x, h0, up, jit=True)
    expected_outputs, expected_grads = _gradients(reference, x, h0, up)
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
    "reset_before": ({"reset_after": False}, {}),
}


@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_fallback_paths_equal_keras(case):
    kwargs, call_kwargs = FALLBACKS[case]
    layer, reference = _pair(return_sequences=True, **kwargs)
    assert not layer._fast_path(call_kwargs.get("mask"), call_kwargs.get("training"))
    x, _ = _inputs()
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
    layer = kl.GRU(UNITS, stateful=True, return_sequences=True)
    reference = keras.layers.GRU(UNITS, stateful=True, return_sequences=True)
    x, _ = _inputs()
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


def test_implementation_1_uses_the_fast_path():
    # Keras' implementation=1 computes the same function with smaller products.
    layer, reference = _pair(implementation=1, return_sequences=True)
    assert layer._fast_path(None, True)
    x, _ = _inputs()
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), ops.convert_to_numpy(reference(x)), atol=1e-5
    )


def test_dropout_outside_training_uses_the_fast_path():
    layer, reference = _pair(dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    assert layer._fast_path(None, False)
    x, _ = _inputs()
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x, training=False)),
        ops.convert_to_numpy(reference(x, training=False)),
        atol=1e-5,
    )


def test_mixed_precision_equals_keras():
    layer, reference = _pair(return_sequences=True, dtype="mixed_float16")
    x, _ = _inputs()
    actual = layer(x)
    assert keras.backend.standardize_dtype(actual.dtype) == "float16"
    np.testing.assert_allclose(
        ops.convert_to_numpy(actual).astype("float32"),
        ops.convert_to_numpy(reference(x)).astype("float32"),
        atol=2e-3,
    )


def test_config_equals_keras_and_round_trips():
    kwargs = {"return_sequences": True, "return_state": True, "dropout": 0.1}
    layer, reference = _pair(name="gru", **kwargs)
    assert layer.get_config() == reference.get_config()
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is kl.GRU
    assert revived.get_config() == layer.get_config()
    assert keras.saving.get_registered_name(kl.GRU) == "kerasdl>GRU"


def test_same_weight_names_as_keras():
    layer, reference = _pair()
    assert [w.path.split("/", 1)[1] for w in layer.weights] == [
        w.path.split("/", 1)[1] for w in reference.weights
    ]


def _tiny_model(recurrent=kl.GRU):
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
    for recurrent in (kl.GRU, keras.layers.GRU):
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
    """A GRU language model as it is and one built with kerasdl's GRU."""
    from kerasdl.models import RNNLanguageModel

    module = importlib.import_module("kerasdl.models.rnn_language_model")

    def build(recurrent):
        monkeypatch.setitem(module.CELLS, "gru", recurrent)
        keras.utils.set_random_seed(0)
        model = RNNLanguageModel(12, cell="gru", units=8, num_layers=2, embedding_dim=4)
        model(np.zeros((1, 1), "int32"))
        return model

    reference = build(keras.layers.GRU)
    model = build(kl.GRU)
    assert type(reference.recurrent_layers[0]) is keras.layers.GRU
    assert isinstance(model.recurrent_layers[0], kl.GRU)
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
