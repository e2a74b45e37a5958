"""The language-modelling task: config checks, whole-stream perplexity, a CLI run."""

import json
import math
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from kerasdl.models import RNNLanguageModel
from kerasdl.recipes import RECIPES
from kerasdl.tasks import language_modeling as task

CHAR_RECIPES = (
    "char_rnn",
    "char_gru",
    "char_lstm",
    "char_lstm_deep",
    "char_transformer",
)


def test_recipes_are_registered_language_models():
    for name in CHAR_RECIPES:
        recipe = RECIPES[name]
        assert (recipe.task, recipe.dataset, recipe.metric) == (
            "language modeling",
            "timemachine",
            "perplexity",
        )
        config = recipe.load().CONFIG
        assert config.model in task.MODEL_NAMES and config.level == "char"
    assert RECIPES["char_lstm_deep"].load().CONFIG.num_layers >= 2


def test_bidirectional_is_refused_in_one_line(tmp_path, capsys):
    from kerasdl.recipes import char_lstm

    status = char_lstm.main(["--bidirectional", "--workdir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert "\n" not in err and "see the very token it must predict" in err
    assert not (tmp_path / "run").exists()  # refused before anything started


def test_bad_values_are_refused_before_any_work(tmp_path, capsys):
    from kerasdl.recipes import char_gru

    status = char_gru.main(["--clipnorm", "0", "--workdir", str(tmp_path / "run")])
    assert status == 2 and "clipnorm" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        ("--stateful", "--stateful carries an RNN's states"),
        ("--stateful --sampling sequential --model transformer_lm", "needs an RNN"),
        ("--warmup-steps 10", "needs --lr-schedule cosine"),
        ("--variational-dropout --model transformer_lm", "one dropout mask per"),
        ("--weight-dropout 0.3 --model transformer_lm", "it needs --model lstm_lm"),
        ("--weight-dropout 0.3 --model gru_lm", "it needs --model lstm_lm"),
    ],
)
def test_stateful_and_warmup_need_their_companions(tmp_path, capsys, flags, message):
    from kerasdl.tasks.exit_codes import UsageError

    config = task.LanguageModelingConfig(
        lr_schedule="constant",
        stateful="--stateful" in flags,
        sampling="sequential" if "sequential" in flags else "random",
        model=next((m for m in ("transformer_lm", "gru_lm") if m in flags), "lstm_lm"),
        warmup_steps=10 if "warmup" in flags else 0,
        variational_dropout="--variational-dropout" in flags,
        weight_dropout=0.3 if "--weight-dropout" in flags else 0.0,
    )
    with pytest.raises(UsageError, match=message) as error:
        task.check_config(config)
    assert "\n" not in str(error.value)


def test_weight_decay_compiles_adamw_that_spares_biases_and_norms():
    model = RNNLanguageModel(9, cell="gru", units=4, embedding_dim=3)
    model(np.zeros((1, 2), "int32"))
    config = task.LanguageModelingConfig(
        weight_decay=0.1, lr_schedule="cosine", warmup_steps=5
    )
    task.compile_model(model, config, steps_per_epoch=10)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert optimizer.weight_decay == 0.1 and optimizer.clipnorm == config.clipnorm
    decayed = {
        v.name for v in model.trainable_variables if optimizer._use_weight_decay(v)
    }
    assert decayed == {"embeddings", "kernel", "recurrent_kernel"}
    assert float(optimizer.learning_rate) == 0.0  # the warm-up starts at 0
    task.compile_model(model, task.LanguageModelingConfig(), steps_per_epoch=10)
    assert type(model.optimizer) is keras.optimizers.Adam


def test_variational_dropout_reaches_the_rnn():
    from types import SimpleNamespace

    data = SimpleNamespace(vocabulary=SimpleNamespace(size=9))
    config = task.LanguageModelingConfig(units=4, variational_dropout=True)
    model = task.build_model(config, data)
    assert model.variational_dropout
    assert model.dropout_layers[0].noise_shape == (None, 1, None)
    assert not task.build_model(
        task.LanguageModelingConfig(units=4), data
    ).variational_dropout


def test_weight_dropout_reaches_the_lstm_layers():
    from types import SimpleNamespace

    data = SimpleNamespace(vocabulary=SimpleNamespace(size=9))
    config = task.LanguageModelingConfig(units=4, num_layers=2, weight_dropout=0.25)
    model = task.build_model(config, data)
    assert model.weight_dropout == 0.25
    assert {layer.weight_dropout for layer in model.recurrent_layers} == {0.25}


def test_ema_momentum_reaches_the_optimizer_and_adds_the_callback():
    model = RNNLanguageModel(9, cell="gru", units=4, embedding_dim=3)
    model(np.zeros((1, 2), "int32"))
    config = task.LanguageModelingConfig(ema_momentum=0.99)
    task.compile_model(model, config, steps_per_epoch=10)
    assert model.optimizer.use_ema and model.optimizer.ema_momentum == 0.99
    assert model.optimizer.clipnorm == config.clipnorm
    _, callbacks = task.training_model(model, config)
    assert len(callbacks) == 1
    task.compile_model(model, task.LanguageModelingConfig(), steps_per_epoch=10)
    assert not model.optimizer.use_ema


@pytest.mark.parametrize("value", ["1", "-0.1"])
def test_ema_momentum_outside_zero_to_one_is_refused(tmp_path, capsys, value):
    from kerasdl.recipes import char_lstm

    run = tmp_path / "run"
    status = char_lstm.main([f"--ema-momentum={value}", "--workdir", str(run)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "--ema-momentum" in err and "\n" not in err
    assert not run.exists()


def test_averaged_weights_are_validated_kept_and_left_after_fit():
    from kerasdl.callbacks import EarlyStopping

    keras.utils.set_random_seed(0)
    model = RNNLanguageModel(9, cell="gru", units=4, embedding_dim=3)
    tokens = np.random.default_rng(0).integers(2, 9, (16, 7)).astype("int32")
    x, y = tokens[:, :-1], tokens[:, 1:]
    config = task.LanguageModelingConfig(ema_momentum=0.9, learning_rate=0.05)
    task.compile_model(model, config, steps_per_epoch=4)
    seen = {}

    class Probe(keras.callbacks.Callback):  # runs before the averaging callback
        def on_test_begin(self, logs=None):
            seen.setdefault("raw", model.get_weights())

        def on_epoch_end(self, epoch, logs=None):
            seen.setdefault("validated", model.get_weights())

        def on_train_batch_begin(self, batch, logs=None):
            if "validated" in seen:
                seen.setdefault("next_epoch", model.get_weights())

    _, averaged = task.training_model(model, config)
    history = model.fit(
        x,
        y,
        batch_size=4,
        epochs=3,
        validation_data=(x, y),
        verbose=0,
        callbacks=[
            EarlyStopping(patience=3, restore_best_weights=True),
            Probe(),
            *averaged,
        ],
    )
    raw, validated = seen["raw"], seen["validated"]
    assert not np.allclose(raw[0], validated[0])  # the average, not the raw weights
    for a, b in zip(raw, seen["next_epoch"]):
        np.testing.assert_array_equal(a, b)  # training goes on from the raw ones
    # The weights left after fit are the averaged ones that gave the best val_loss.
    best = float(np.min(history.history["val_loss"]))
    assert math.isclose(model.evaluate(x, y, verbose=0)[0], best, rel_tol=1e-5)


def test_jit_compile_trains_kerasdls_lstm_under_xla():
    import kerasdl

    model = RNNLanguageModel(9, cell="lstm", units=4, embedding_dim=3)
    assert isinstance(model.recurrent_layers[0], kerasdl.layers.LSTM)
    task.compile_model(
        model, task.LanguageModelingConfig(jit_compile=True), steps_per_epoch=5
    )
    assert model.jit_compile
    tokens = np.random.default_rng(0).integers(2, 9, (4, 7)).astype("int32")
    losses = [
        float(model.train_on_batch(tokens[:, :-1], tokens[:, 1:])[0]) for _ in range(5)
    ]
    assert losses[-1] < losses[0], losses
    # No recipe trains under XLA: with their dropout a Keras dropout mask makes a
    # jit-compiled step 3-4x slower on a CPU (benchmarks/language_model.py).
    assert not any(RECIPES[n].load().CONFIG.jit_compile for n in CHAR_RECIPES)


def test_stateful_training_model_resets_the_states_at_every_epoch_start():
    model = RNNLanguageModel(9, cell="lstm", units=4, embedding_dim=3)
    config = task.LanguageModelingConfig(
        stateful=True, sampling="sequential", batch_size=2
    )
    trainer, callbacks = task.training_model(model, config)
    assert trainer.language_model is model and trainer.batch_size == 2
    trainer(np.full((2, 3), 4, "int32"), training=True)
    assert np.any(np.asarray(trainer.carried_states[0][0]))
    for callback in callbacks:
        callback.set_model(trainer)
        callback.on_epoch_begin(1)
    assert not np.any(np.asarray(trainer.carried_states[0][0]))
    same, none = task.training_model(model, task.LanguageModelingConfig())
    assert same is model and none == []


def test_whole_stream_cross_entropy_carries_the_states_between_chunks():
    keras.utils.set_random_seed(0)
    model = RNNLanguageModel(9, cell="lstm", units=4, embedding_dim=3)
    ids = np.random.default_rng(0).integers(2, 9, size=23).astype("int32")
    total, count = task.split_cross_entropy(model, ids, chunk_length=5, rows=1)
    logits = np.asarray(model(ids[None, :-1]), "float64")[0]
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -log_probs[np.arange(22), ids[1:]]
    assert count == 22
    assert math.isclose(total, expected.sum(), rel_tol=1e-5)
    losses = task.token_cross_entropies(model, ids, chunk_length=5, rows=1)
    np.testing.assert_allclose(losses, expected, rtol=1e-5)


class _BigramModel(keras.Model):
    """Logits from the current token only, and a fixed context like a Transformer."""

    sequence_length = 6

    def __init__(self):
        super().__init__(name="bigram")
        self.table = keras.layers.Embedding(9, 9)

    def call(self, tokens, training=False):
        return self.table(tokens)


@pytest.mark.parametrize("length", [4, 7, 23])
def test_fixed_context_model_scores_every_token_once_in_overlapping_windows(length):
    keras.utils.set_random_seed(0)
    model = _BigramModel()
    ids = np.random.default_rng(1).integers(2, 9, size=length).astype("int32")
    total, count = task.split_cross_entropy(model, ids, chunk_length=64, rows=2)
    logits = np.asarray(model(ids[None, :-1]), "float64")[0]
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -log_probs[np.arange(length - 1), ids[1:]]
    assert count == length - 1
    assert math.isclose(total, expected.sum(), rel_tol=1e-5)
    losses = task.token_cross_entropies(model, ids, chunk_length=64, rows=2)
    np.testing.assert_allclose(losses, expected, rtol=1e-5)  # each token once


@pytest.mark.parametrize("fixed_context", [False, True])
def test_log_probabilities_hold_every_tokens_cross_entropy(fixed_context):
    keras.utils.set_random_seed(0)
    ids = np.random.default_rng(1).integers(2, 9, size=41).astype("int32")
    if fixed_context:
        model = _BigramModel()
    else:
        model = RNNLanguageModel(9, units=8, embedding_dim=4, cell="gru")
    log_probs = task.token_log_probabilities(model, ids, chunk_length=5, rows=2)
    losses = task.token_cross_entropies(model, ids, chunk_length=5, rows=2)
    assert log_probs.dtype == np.float32 and log_probs.shape == (40, 9)
    np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        -log_probs[np.arange(40), ids[1:]], losses, rtol=1e-5, atol=1e-6
    )


def test_mixture_averages_the_two_models_probabilities():
    neural = np.array([0.1, 2.0, 3.0])  # nats
    ngram = np.log([0.5, 0.5, 0.01])
    mixed = np.log(0.5 * np.exp(-neural) + 0.5 * np.exp(ngram))
    assert math.isclose(
        task.mixture_cross_entropy(neural, ngram), -mixed.mean(), rel_tol=1e-12
    )
    assert math.isclose(task.mixture_cross_entropy(neural, ngram, 1.0), neural.mean())
    assert math.isclose(task.mixture_cross_entropy(neural, ngram, 0.0), -ngram.mean())
    with pytest.raises(ValueError, match="same tokens"):
        task.mixture_cross_entropy(neural, ngram[:2])
    with pytest.raises(ValueError, match=r"Received: weight=1.5"):
        task.mixture_cross_entropy(neural, ngram, 1.5)


def _all_layers(layer, seen=None):
    """`layer` and every layer its attributes hold, however deep."""
    seen = set() if seen is None else seen
    if id(layer) in seen:
        return []
    seen.add(id(layer))
    found = [layer]
    for value in vars(layer).values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, keras.layers.Layer):
                found += _all_layers(item, seen)
    return found


@pytest.mark.parametrize(
    "overrides",
    [
        {"model": "lstm_lm", "units": 8, "embedding_dim": 4},
        {
            "model": "transformer_lm",
            "hidden_dim": 8,
            "num_heads": 2,
            "intermediate_dim": 16,
        },
    ],
    ids=["lstm", "transformer"],
)
def test_mixed_policy_builds_in_it_and_measures_a_float32_copy(overrides):
    config = task.LanguageModelingConfig(
        sequence_length=8, num_layers=1, dtype_policy="mixed_bfloat16", **overrides
    )
    data = SimpleNamespace(vocabulary=SimpleNamespace(size=11))
    with task.dtype_policy(config.dtype_policy):
        model = task.build_model(config, data)
        task.build(model)
    assert keras.config.dtype_policy().name == "float32"  # Set back.
    assert {layer.compute_dtype for layer in _all_layers(model)} == {"bfloat16"}
    assert {v.dtype for v in model.weights} == {"float32"}

    copy = task.in_float32(model, config, data)
    assert {layer.compute_dtype for layer in _all_layers(copy)} == {"float32"}
    for a, b in zip(copy.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    tokens = np.random.default_rng(0).integers(0, 11, size=(2, 8))
    logits, exact = model(tokens), copy(tokens)
    assert logits.dtype == exact.dtype == "float32"
    np.testing.assert_allclose(logits, exact, atol=0.05)  # bfloat16's 8 bits
    assert task.in_float32(copy, config, data) is copy


def test_dtype_policy_is_set_back_when_building_fails():
    with pytest.raises(RuntimeError), task.dtype_policy("mixed_bfloat16"):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        raise RuntimeError("building failed")
    assert keras.config.dtype_policy().name == "float32"


def _train_tiny(recipe, name, tmp_path, capsys, *flags):
    """Runs `recipe` for one tiny epoch; returns its export's model card."""
    tiny = "--epochs 1 --units 8 --embedding-dim 4 --batch-size 128 --verbose 0"
    status = recipe.main(
        tiny.split()
        + list(flags)
        + ["--sample-length", "5", "--ngram-order", "3"]
        + ["--workdir", str(tmp_path / "run"), "--output", str(tmp_path / "models")]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    export_dir = tmp_path / "models" / name / "1"
    assert f"Model exported to: {export_dir}" in out
    card = json.loads((export_dir / "assets.extra" / "model_card.json").read_text())
    return card


@pytest.mark.large  # one tiny epoch over the whole book, evaluation and export: ~1 min
def test_char_lstm_trains_evaluates_samples_and_exports(tmp_path, capsys):
    from kerasdl.recipes import char_lstm

    card = _train_tiny(char_lstm, "char_lstm", tmp_path, capsys)
    metrics = card["metrics"]
    assert 1.0 < metrics["validation_perplexity"] < card["dataset"]["vocabulary_size"]
    assert math.isclose(
        metrics["validation_bits_per_token"],
        math.log2(metrics["validation_perplexity"]),
        rel_tol=1e-9,
    )
    assert (
        metrics["validation_tokens_predicted"]
        == card["dataset"]["validation_tokens"] - 1
    )
    assert metrics["baseline_validation_perplexity"] > 1.0
    assert (
        1.0
        < metrics["mixture_validation_perplexity"]
        < max(
            metrics["validation_perplexity"], metrics["baseline_validation_perplexity"]
        )
    )
    assert [s["prompt"] for s in card["samples"]] == list(task.PROMPTS)
    assert all(len(s["sampled"]) == 5 for s in card["samples"])


@pytest.mark.large  # one tiny epoch over the whole book, evaluation and export: ~1 min
def test_char_lstm_trains_under_mixed_bfloat16_and_exports_float32(tmp_path, capsys):
    from kerasdl.recipes import char_lstm

    card = _train_tiny(
        char_lstm, "char_lstm", tmp_path, capsys, "--dtype-policy", "mixed_bfloat16"
    )
    assert card["config"]["dtype_policy"] == "mixed_bfloat16"
    size = card["dataset"]["vocabulary_size"]
    assert 1.0 < card["metrics"]["validation_perplexity"] < size
    export_dir = tmp_path / "models" / "char_lstm" / "1"
    saved = saved_model_pb2.SavedModel.FromString(
        (export_dir / "saved_model.pb").read_bytes()
    )
    bfloat16 = tf.bfloat16.as_datatype_enum
    computing_in_bfloat16 = [
        node.name
        for function in saved.meta_graphs[0].graph_def.library.function
        for node in function.node_def
        if any(value.type == bfloat16 for value in node.attr.values())
    ]
    assert not computing_in_bfloat16  # The export computes in float32.
    reader = tf.train.load_checkpoint(str(export_dir / "variables" / "variables"))
    dtypes = {
        dtype
        for name, dtype in reader.get_variable_to_dtype_map().items()
        if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")
    }
    assert dtypes == {tf.float32}, dtypes  # No bfloat16 copies in the export.
    exported = tf.saved_model.load(str(export_dir))
    text = "The Time Traveller"
    scored = exported.signatures["score"](text=tf.constant([text]))
    per_token = float(scored["negative_log_likelihood"][0]) / float(
        scored["num_predicted"][0]
    )
    assert 0.0 < per_token < math.log(size)


@pytest.mark.large  # one tiny stateful epoch over the whole book and export: ~1 min
def test_stateful_char_rnn_trains_and_exports_the_plain_language_model(
    tmp_path, capsys
):
    from kerasdl.recipes import char_rnn

    card = _train_tiny(
        char_rnn, "char_rnn", tmp_path, capsys, "--stateful", "--sampling", "sequential"
    )
    assert card["config"]["stateful"] is True
    plain = RNNLanguageModel(
        card["dataset"]["vocabulary_size"],
        cell="simple_rnn",
        units=8,
        num_layers=char_rnn.CONFIG.num_layers,
        embedding_dim=4,
    )
    plain(np.zeros((1, 1), "int32"))
    assert card["parameter_count"] == plain.count_params()  # no carried states
    assert 1.0 < card["metrics"]["validation_perplexity"] < 75
