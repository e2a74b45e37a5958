"""RNNLanguageModel: the language-model protocol, cached == uncached, saving (TF and JAX)."""

import keras
import numpy as np
import pytest
from keras import ops

from kerasdl.models import (
    LANGUAGE_MODELS,
    RNNLanguageModel,
    get_language_model,
)

VOCAB = 11
TOKENS = np.random.default_rng(0).integers(1, VOCAB, size=(3, 9)).astype("int32")


def compile_fn(fn):
    """`fn` as a graph: `tf.function` on TensorFlow, `jax.jit` on JAX."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    pytest.skip(f"no graph mode tested for {keras.backend.backend()}")


def small(cell, num_layers=2, **kwargs):
    keras.utils.set_random_seed(0)
    return RNNLanguageModel(
        VOCAB, cell=cell, units=6, num_layers=num_layers, embedding_dim=5, **kwargs
    )


@pytest.mark.parametrize("cell", ["simple_rnn", "gru", "lstm"])
def test_prompt_then_one_token_at_a_time_equals_the_whole_sequence(cell):
    model = small(cell)
    expected = ops.convert_to_numpy(model(TOKENS))
    assert expected.shape == (3, 9, VOCAB) and expected.dtype == np.float32
    cache = model.initial_cache(3, 9)
    logits, cache = model.call_with_cache(TOKENS[:, :4], cache, 0)  # the prompt
    pieces = [ops.convert_to_numpy(logits)]
    for index in range(4, 9):
        logits, cache = model.call_with_cache(
            TOKENS[:, index : index + 1], cache, index
        )
        pieces.append(ops.convert_to_numpy(logits))
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), expected, atol=1e-5)


def test_cached_step_in_a_graph_with_a_tensor_index():
    model = small("lstm")
    expected = ops.convert_to_numpy(model(TOKENS))[:, 5]

    @compile_fn
    def run(tokens, index):
        cache = model.initial_cache(3, 9)
        _, cache = model.call_with_cache(tokens[:, :5], cache, 0)
        logits, _ = model.call_with_cache(tokens[:, 5:6], cache, index)
        return logits[:, 0]

    graph = run(TOKENS, ops.convert_to_tensor(5, "int32"))
    np.testing.assert_allclose(ops.convert_to_numpy(graph), expected, atol=1e-5)


def test_initial_cache_holds_zero_states_per_layer():
    lstm, gru = small("lstm", num_layers=3), small("gru", num_layers=1)
    assert [len(states) for states in lstm.initial_cache(2, 5)] == [2, 2, 2]
    (states,) = gru.initial_cache(2, 5)
    assert len(states) == 1 and tuple(states[0].shape) == (2, 6)
    assert not np.any(ops.convert_to_numpy(states[0]))


def test_padding_to_the_right_leaves_earlier_logits_unchanged():
    model = small("gru")
    padded = np.concatenate([TOKENS[:, :5], np.zeros((3, 4), "int32")], axis=1)
    np.testing.assert_allclose(
        ops.convert_to_numpy(model(padded))[:, :5],
        ops.convert_to_numpy(model(TOKENS[:, :5])),
        atol=1e-6,
    )


def test_dropout_is_active_in_training_only():
    model = small("lstm", dropout=0.5)
    inference = ops.convert_to_numpy(model(TOKENS))
    np.testing.assert_array_equal(ops.convert_to_numpy(model(TOKENS)), inference)
    assert not np.allclose(
        ops.convert_to_numpy(model(TOKENS, training=True)), inference
    )


def test_variational_dropout_drops_the_same_features_at_every_step():
    model = small("lstm", num_layers=1, dropout=0.5, variational_dropout=True)
    embedded = model.embedding(TOKENS)  # (batch, length, features)
    dropped = ops.convert_to_numpy(model.dropout_layers[0](embedded, training=True))
    zeros = dropped == 0
    assert zeros.any() and not zeros.all()
    # One mask per sequence: a feature dropped at one step is dropped at all.
    np.testing.assert_array_equal(zeros, np.repeat(zeros[:, :1], TOKENS.shape[1], 1))
    plain = small("lstm", num_layers=1, dropout=0.5).dropout_layers[0]
    zeros = ops.convert_to_numpy(plain(embedded, training=True)) == 0
    assert (zeros != zeros[:, :1]).any()  # the default: a new mask per token
    inference = ops.convert_to_numpy(model(TOKENS))
    np.testing.assert_array_equal(ops.convert_to_numpy(model(TOKENS)), inference)
    with pytest.raises(TypeError, match="Received: variational_dropout='yes'"):
        small("lstm", variational_dropout="yes")


def test_weight_dropout_reaches_every_lstm_layer_and_round_trips(tmp_path):
    model = small("lstm", weight_dropout=0.3)
    assert [layer.weight_dropout for layer in model.recurrent_layers] == [0.3, 0.3]
    inference = ops.convert_to_numpy(model(TOKENS))
    assert not np.allclose(
        ops.convert_to_numpy(model(TOKENS, training=True)), inference
    )
    path = str(tmp_path / "lm.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config() == model.get_config()
    assert loaded.recurrent_layers[0].weight_dropout == 0.3
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded(TOKENS)), inference, atol=1e-6
    )


@pytest.mark.parametrize("cell", ["simple_rnn", "gru"])
def test_weight_dropout_is_refused_for_other_cells(cell):
    with pytest.raises(ValueError, match="implemented for cell='lstm' only"):
        small(cell, weight_dropout=0.3)
    with pytest.raises(ValueError, match="`weight_dropout` must be a float in"):
        small("lstm", weight_dropout=1.5)


@pytest.mark.parametrize("cell", ["simple_rnn", "gru", "lstm"])
def test_recurrent_dropout_is_active_in_training_only(cell):
    model = small(cell, recurrent_dropout=0.5)
    inference = ops.convert_to_numpy(model(TOKENS))
    cache = model.initial_cache(TOKENS.shape[0])
    cached, _ = model.call_with_cache(TOKENS, cache, 0)
    np.testing.assert_allclose(ops.convert_to_numpy(cached), inference, atol=1e-6)
    assert not np.allclose(
        ops.convert_to_numpy(model(TOKENS, training=True)), inference
    )


def test_keras_file_round_trip(tmp_path):
    model = small(
        "gru",
        dropout=0.25,
        recurrent_dropout=0.1,
        variational_dropout=True,
        name="char_gru",
    )
    expected = ops.convert_to_numpy(model(TOKENS))
    path = str(tmp_path / "lm.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)  # No custom_objects: registered.
    assert isinstance(loaded, RNNLanguageModel)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded(TOKENS)), expected, atol=1e-6
    )


def test_parameter_count_of_one_lstm_layer():
    model = RNNLanguageModel(VOCAB, cell="lstm", units=6, embedding_dim=5)
    model(TOKENS)
    embedding, lstm, head = VOCAB * 5, 4 * (5 * 6 + 6 * 6 + 6), 6 * VOCAB + VOCAB
    assert model.count_params() == embedding + lstm + head


def test_learns_a_repeating_sequence():
    model = small("gru", num_layers=1)
    stream = np.tile(np.arange(2, 8, dtype="int32"), 20)
    inputs = np.stack([stream[i : i + 12] for i in range(0, 96, 6)])
    targets = np.stack([stream[i + 1 : i + 13] for i in range(0, 96, 6)])
    model.compile(
        keras.optimizers.Adam(0.05),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(inputs, targets, epochs=30, verbose=0)
    assert history.history["loss"][-1] < 0.1 * history.history["loss"][0]


def test_registry_variants():
    assert {"rnn_lm", "simple_rnn_lm", "gru_lm", "lstm_lm"} <= set(LANGUAGE_MODELS)
    model = get_language_model("gru_lm", VOCAB, units=4, num_layers=2)
    assert (model.cell, model.units, model.num_layers) == ("gru", 4, 2)
    with pytest.raises(ValueError, match="Unknown language model 'rnn'.*gru_lm"):
        get_language_model("rnn", VOCAB)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cell": "bidirectional_lstm"}, "cell.*Received: cell='bidirectional_lstm'"),
        ({"units": 0}, "Received: units=0"),
        ({"num_layers": 1.5}, "Received: num_layers=1.5"),
        ({"dropout": 1.0}, "Received: dropout=1.0"),
        ({"recurrent_dropout": -0.1}, "Received: recurrent_dropout=-0.1"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RNNLanguageModel(VOCAB, **kwargs)


def _trainer(cell="lstm", batch_size=3):
    from kerasdl.models.rnn_language_model import StatefulRNNTrainer

    return StatefulRNNTrainer(small(cell), batch_size=batch_size)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_stateful_trainer_continues_each_row_from_the_last_batch(cell):
    trainer = _trainer(cell)
    whole = ops.convert_to_numpy(trainer.language_model(TOKENS))
    first = trainer(TOKENS[:, :4], training=True)
    second = trainer(TOKENS[:, 4:], training=True)  # carries on from the states
    np.testing.assert_allclose(ops.convert_to_numpy(first), whole[:, :4], atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(second), whole[:, 4:], atol=1e-5)


def test_stateful_trainer_reset_and_validation_start_from_zero_states():
    trainer = _trainer()
    alone = ops.convert_to_numpy(trainer.language_model(TOKENS[:, 4:]))
    trainer(TOKENS[:, :4], training=True)
    assert np.any(ops.convert_to_numpy(trainer.carried_states[0][0]))
    validation = ops.convert_to_numpy(trainer(TOKENS[:, 4:], training=False))
    np.testing.assert_allclose(validation, alone, atol=1e-5)  # states not read
    trainer.reset_states()
    assert not any(
        np.any(ops.convert_to_numpy(v))
        for layer in trainer.carried_states
        for v in layer
    )
    after_reset = ops.convert_to_numpy(trainer(TOKENS[:, 4:], training=True))
    np.testing.assert_allclose(after_reset, alone, atol=1e-5)


def test_stateful_trainer_fit_updates_the_carried_states_and_the_weights():
    trainer = _trainer(batch_size=3)
    trainer.language_model(TOKENS)  # builds the weights
    before = ops.convert_to_numpy(trainer.language_model.head.kernel)
    trainer.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    trainer.fit(TOKENS[:, :-1], TOKENS[:, 1:], batch_size=3, epochs=1, verbose=0)
    assert np.any(ops.convert_to_numpy(trainer.carried_states[1][1]))
    assert not np.allclose(
        ops.convert_to_numpy(trainer.language_model.head.kernel), before
    )
    assert len(trainer.trainable_weights) == len(
        trainer.language_model.trainable_weights
    )


def test_stateful_trainer_config_round_trip_and_bad_arguments():
    from kerasdl.models.rnn_language_model import StatefulRNNTrainer

    trainer = _trainer("gru", batch_size=4)
    clone = StatefulRNNTrainer.from_config(trainer.get_config())
    assert clone.batch_size == 4 and clone.language_model.cell == "gru"
    assert [len(layer) for layer in clone.carried_states] == [1, 1]
    with pytest.raises(TypeError, match="must be an RNNLanguageModel"):
        StatefulRNNTrainer(keras.Sequential([keras.layers.Dense(2)]), batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        StatefulRNNTrainer(small("gru"), batch_size=0)
