"""Language modelling as library steps: data, model, fit, perplexity, samples, export.

    kerasdl train char_lstm            # = python -m kerasdl.recipes.char_lstm
    kerasdl train char_gru --units 512

*The Time Machine* (`kerasdl.data.load_language_modeling_dataset`: contiguous
split, first 90% of the story trains, last 10% validates, vocabulary from the
training split) -> a model of kerasdl's language-model protocol
(`kerasdl.models.RNNLanguageModel`, `TransformerLanguageModel`) -> Adam with
gradient clipping (`clipnorm`), next-token cross-entropy from logits (the token
streams hold no padding, so nothing is masked) -> `kerasdl.tasks.fit` (early
stopping on validation loss, resumable) -> perplexity and bits per token over
the *whole* training and validation streams (`split_cross_entropy`), the
interpolated Kneser-Ney n-gram baseline (`kerasdl.models.ngram`) on the same
validation tokens -> sampled continuations of fixed prompts -> a SavedModel
(`kerasdl.export.export_language_model`: `serving_default`, `generate`, `score`).

```python
from kerasdl.tasks import language_modeling as task

config = task.LanguageModelingConfig(model="lstm_lm", epochs=1, units=64)
data = task.load_data(config)
model = task.build_model(config, data)
task.compile_model(model, config, steps_per_epoch=int(data.train.cardinality()))
```

Files written by `run`: as `kerasdl.tasks.image_classification`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, field

from kerasdl.tasks import config_fields as fields
from kerasdl.tasks.exit_codes import UsageError

DESCRIPTION = "Train, evaluate (perplexity) and export the {recipe} language model."
FIXED_FIELDS = ("model",)
MODEL_NAMES = ("simple_rnn_lm", "gru_lm", "lstm_lm", "transformer_lm")
PROMPTS = ("The Time Traveller", "I saw", "The Morlocks")  # for the model card


def _sampling(default, help=None, **rules):
    """A field that changes sampling/evaluation only: it may change on resume."""
    metadata = {"resume": True, **rules}
    if help:
        metadata["help"] = help
    return field(default=default, metadata=metadata)


@dataclass
class LanguageModelingConfig:
    """Every hyperparameter of a language-modelling run."""

    model: str = field(default="lstm_lm", metadata={"choices": MODEL_NAMES})
    dataset: str = fields.dataset(
        "timemachine", "kerasdl.data.timemachine:LANGUAGE_MODELING_DATASETS"
    )
    level: str = field(
        default="char", metadata={"choices": ("char", "word"), "help": "token unit"}
    )
    sequence_length: int = fields.positive(64, "tokens per training row", 100_000)
    sampling: str = field(
        default="random",
        metadata={
            "choices": ("random", "sequential"),
            "help": "batching of the training stream",
        },
    )
    max_vocabulary_size: int | None = field(
        default=None,
        metadata={"help": "vocabulary cap (reserved ids included)", "min": 3},
    )
    epochs: int = fields.epochs(20)
    batch_size: int = fields.batch_size(32)
    learning_rate: float = fields.learning_rate(2e-3)
    lr_schedule: str = fields.lr_schedule("constant")
    warmup_steps: int = field(
        default=0,
        metadata={
            "help": "linear warm-up steps (--lr-schedule cosine)",
            "min": 0,
            "max": 10_000_000,
        },
    )
    weight_decay: float = field(
        default=0.0,
        metadata={
            "help": "AdamW's decoupled weight decay of the kernels (0: Adam)",
            "min": 0,
            "max": 1,
        },
    )
    clipnorm: float = field(
        default=1.0,
        metadata={"help": "gradient norm clipping", "above": 0, "max": 1e6},
    )
    ema_momentum: float = fields.fraction(
        0.0,
        "exponential moving average of the weights (Keras' use_ema), validated, "
        "kept and exported in their place; 0: off",
    )
    embedding_dim: int = fields.positive(64, "RNN token embedding", 100_000)
    units: int = fields.positive(256, "RNN units per layer", 100_000)
    num_layers: int = fields.positive(1, maximum=1_000)
    bidirectional: bool = field(
        default=False,
        metadata={"help": "refused: a language model must not read ahead"},
    )
    hidden_dim: int = fields.positive(128, "Transformer width", 100_000)
    num_heads: int = fields.positive(4, "Transformer heads", 1_000)
    intermediate_dim: int = fields.positive(512, "Transformer MLP", 1_000_000)
    dropout: float = fields.fraction(0.0)
    recurrent_dropout: float = fields.fraction(
        0.0, "RNN dropout on the recurrent state"
    )
    weight_dropout: float = fields.fraction(
        0.0, "LSTM: DropConnect on the recurrent kernel, one mask per batch"
    )
    variational_dropout: bool = field(
        default=False,
        metadata={
            "help": "RNN: one --dropout mask per sequence (the same features "
            "dropped at every step) instead of one per token"
        },
    )
    stateful: bool = field(
        default=False,
        metadata={
            "help": "RNN: carry the states from batch to batch in training "
            "(truncated backpropagation through time; --sampling sequential)"
        },
    )
    jit_compile: bool = field(
        default=False,
        metadata={
            "help": "XLA for training and evaluation (on a CPU: faster for "
            "kerasdl's LSTM and GRU without dropout, 3-4x slower with it)",
            "resume": True,
        },
    )
    dtype_policy: str = field(
        default="float32",
        metadata={
            "choices": ("float32", "mixed_bfloat16", "mixed_float16"),
            "help": "Keras dtype policy of training (mixed_bfloat16: 1.2-1.75x "
            "faster LSTM and GRU steps on CPUs with AMX, slower without); "
            "evaluation, samples and the export compute in float32",
            "resume": True,
        },
    )
    distill_from: str | None = field(
        default=None,
        metadata={
            "help": "workdir of a published language-model run (one model's, or "
            "char_ensemble's) whose next-token probabilities, averaged over its "
            "models, train this one as soft targets (knowledge distillation)"
        },
    )
    distillation_weight: float = field(
        default=0.5,
        metadata={
            "help": "the teacher's share of each training target, the observed "
            "token the rest (--distill-from)",
            "min": 0,
            "max": 1,
        },
    )
    pretrain_epochs: int = field(
        default=0,
        metadata={
            "help": "epochs on --pretrain-corpus before the book (early stopping on "
            "the corpus' held-out end); 0: no pretraining",
            "min": 0,
            "max": 100_000,
        },
    )
    pretrain_corpus: str = field(
        default="tatoeba",
        metadata={
            "choices": ("tatoeba",),
            "help": "other English text for --pretrain-epochs (tatoeba: the "
            "English sentences of the embedded translation pairs)",
        },
    )
    early_stopping_patience: int = fields.patience(3)
    ngram_order: int = _sampling(7, "order of the Kneser-Ney baseline", min=1, max=20)
    sample_length: int = _sampling(120, "tokens sampled per prompt", min=1, max=10_000)
    temperature: float = _sampling(0.7, "sampling temperature", above=0, max=100)
    seed: int = fields.seed(0)
    output: str = fields.output()
    verbose: str = fields.verbose()


Config = LanguageModelingConfig


@dataclass
class LanguageModelingRunResult:
    export_path: str
    metrics: dict
    epochs_run: int
    training_seconds: float
    samples: list
    model_card: dict


# Steps -------------------------------------------------------------------------------


def check_config(config: LanguageModelingConfig) -> None:
    """Field rules, then the rules between fields; one line per refusal."""
    from kerasdl.tasks import steps

    steps.check_config(config)
    if config.bidirectional:
        raise UsageError(
            "--bidirectional: a bidirectional RNN reads the text from both ends, so "
            "it would see the very token it must predict; language models read left "
            "to right only (bidirectional RNNs belong in classifiers: rnn_intent)"
        )
    if config.warmup_steps and config.lr_schedule != "cosine":
        raise UsageError(
            f"--warmup-steps {config.warmup_steps} needs --lr-schedule cosine "
            "(the warm-up leads into the cosine decay)"
        )
    if config.stateful and (
        config.model == "transformer_lm" or config.sampling != "sequential"
    ):
        raise UsageError(
            "--stateful carries an RNN's states from batch to batch: it needs an "
            "RNN model and --sampling sequential (row j of each batch continues "
            f"row j of the last). Received: model={config.model}, "
            f"sampling={config.sampling}"
        )
    if config.variational_dropout and config.model == "transformer_lm":
        raise UsageError(
            "--variational-dropout draws one dropout mask per sequence in an RNN "
            "language model; the Transformer's dropout has no such option. "
            f"Received: model={config.model}"
        )
    if config.weight_dropout and config.model != "lstm_lm":
        raise UsageError(
            "--weight-dropout drops entries of an LSTM's recurrent kernel "
            "(DropConnect); it needs --model lstm_lm. "
            f"Received: model={config.model}"
        )
    if config.model == "transformer_lm" and config.hidden_dim % config.num_heads:
        raise UsageError(
            f"--num-heads {config.num_heads} must divide --hidden-dim "
            f"{config.hidden_dim} (each head gets hidden_dim / num_heads features)"
        )


def load_data(config: LanguageModelingConfig):
    """The `kerasdl.data.LanguageModelingDataset` of `config`."""
    from kerasdl.data.timemachine import load_language_modeling_dataset

    try:
        return load_language_modeling_dataset(
            config.dataset,
            level=config.level,
            sequence_length=config.sequence_length,
            batch_size=config.batch_size,
            sampling=config.sampling,
            max_vocabulary_size=config.max_vocabulary_size,
            seed=config.seed,
        )
    except ValueError as error:
        raise UsageError(error) from None


def build_model(config: LanguageModelingConfig, data, name=None):
    """The registered language model `config.model` over the data's vocabulary."""
    from kerasdl.models import get_language_model

    size = data.vocabulary.size
    name = name or config.model
    try:
        if config.model == "transformer_lm":
            model = get_language_model(
                "transformer_lm",
                size,
                sequence_length=config.sequence_length,
                num_layers=config.num_layers,
                num_heads=config.num_heads,
                hidden_dim=config.hidden_dim,
                intermediate_dim=config.intermediate_dim,
                dropout=config.dropout,
                name=name,
            )
        else:
            model = get_language_model(
                config.model,
                size,
                units=config.units,
                num_layers=config.num_layers,
                embedding_dim=config.embedding_dim,
                dropout=config.dropout,
                recurrent_dropout=config.recurrent_dropout,
                variational_dropout=config.variational_dropout,
                weight_dropout=config.weight_dropout,
                name=name,
            )
    except ValueError as error:
        raise UsageError(error) from None
    return model


def training_model(model, config: LanguageModelingConfig):
    """The model to fit and its extra callbacks: `(model, [])`, with
    `config.stateful` a `StatefulRNNTrainer` around it (states carried from
    batch to batch, zeroed at the start of every epoch) and that callback, and
    with `config.ema_momentum` a `kerasdl.callbacks.AveragedWeightsForValidation`."""
    import keras

    from kerasdl.callbacks import AveragedWeightsForValidation
    from kerasdl.models.rnn_language_model import StatefulRNNTrainer

    averaged = [AveragedWeightsForValidation()] if config.ema_momentum else []
    if not config.stateful:
        return model, averaged

    class ResetStates(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            trainer.reset_states()

    trainer = StatefulRNNTrainer(model, config.batch_size, name=f"{model.name}_trainer")
    return trainer, [ResetStates(), *averaged]


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras' global dtype policy set to `name` for the layers created inside
    (Keras has no scoped form), then set back."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_for_training(config: LanguageModelingConfig, data, name=None):
    """`(model, fit_model, callbacks)` as `run` trains them: built under
    `config.dtype_policy`, `fit_model` (the model, or its stateful trainer)
    compiled for the data's steps per epoch."""
    with dtype_policy(config.dtype_policy):
        model = build_model(config, data, name=name)
        build(model)
        fit_model, callbacks = training_model(model, config)
        steps_per_epoch = int(data.train.cardinality())
        compile_model(fit_model, config, steps_per_epoch=steps_per_epoch)
    return model, fit_model, callbacks


def in_float32(model, config: LanguageModelingConfig, data, name=None):
    """`model` if it computes in float32, else the same model built in float32
    with its weights (kept in float32 under every mixed policy)."""
    if model.compute_dtype == "float32":
        return model
    with dtype_policy("float32"):
        copy = build_model(config, data, name=name or model.name)
        build(copy)
    copy.set_weights(model.get_weights())
    return copy


def load_trained(config: LanguageModelingConfig, run_dir, name=None):
    """The model of `config` with the final weights of `run_dir` (a
    `kerasdl.tasks.RunDirectory` whose run finished)."""
    from kerasdl.callbacks.resumable_checkpoint import ResumableCheckpoint

    model = build_model(config, load_data(config), name=name)
    build(model)
    try:
        ResumableCheckpoint(run_dir.checkpoints).restore_from(
            run_dir.final_checkpoint, model
        )
    except Exception as error:  # noqa: BLE001 -- any corruption: one line.
        raise UsageError(
            f"{run_dir.final_checkpoint} is unreadable ({error}); the final weights "
            f"of the run in {run_dir.path} are lost: train that run again"
        ) from None
    return model


def build(model) -> None:
    """Creates the model's weights with a one-token batch (to size checkpoints)."""
    import numpy as np

    model(np.zeros((1, 1), "int32"), training=False)


def compile_model(model, config: LanguageModelingConfig, *, steps_per_epoch: int):
    """Adam (AdamW with `weight_decay`; constant or warmed-up cosine rate) with
    `clipnorm` and, with `ema_momentum`, a moving average of the weights
    (`use_ema`; see `kerasdl.callbacks.AveragedWeightsForValidation`); cross-entropy from logits.

    The weight decay acts on kernels and embeddings only, not on biases or the
    layer normalizations' scales and offsets.
    """
    import keras

    from kerasdl.tasks.steps import optimizer

    adam = optimizer(
        "adamw" if config.weight_decay else "adam",
        config.learning_rate,
        schedule=config.lr_schedule,
        total_steps=config.epochs * steps_per_epoch,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
    )
    # The shared builder has no clipping or averaging: the same optimizer, plus
    # clipnorm and (ema_momentum > 0) a moving average of the weights.
    extra = {"clipnorm": config.clipnorm}
    if config.ema_momentum:
        extra.update(use_ema=True, ema_momentum=config.ema_momentum)
    adam = type(adam).from_config({**adam.get_config(), **extra})
    if config.weight_decay:
        adam.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    if config.distill_from:  # Targets are distributions (distillation.py).
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        optimizer=adam,
        loss=loss,
        metrics=["accuracy"],
        jit_compile=config.jit_compile,
    )


def split_cross_entropy(model, ids, *, chunk_length=64, rows=32) -> tuple[float, int]:
    """Summed next-token cross-entropy (nats) over a whole token stream.

    The sum of `token_cross_entropies` (read there how the stream is read).

    Returns:
        `(total nats, tokens predicted)`; perplexity is `exp(total / count)`.
    """
    losses = token_cross_entropies(model, ids, chunk_length=chunk_length, rows=rows)
    return float(losses.sum()), len(losses)


def token_cross_entropies(model, ids, *, chunk_length=64, rows=32):
    """Next-token cross-entropy (nats) of every token of a stream but the first.

    Every token but the first is predicted exactly once. A model without a
    fixed context (an RNN) reads the stream as `rows` contiguous rows,
    `chunk_length` tokens at a time, carrying its states from chunk to chunk
    (`call_with_cache`), so only the start of each row is read without context.
    A model with a fixed context (`sequence_length`) reads overlapping windows
    of `min(chunk_length, sequence_length)` tokens moved on by half a window,
    and each window scores only its second half (the first window all of it),
    so every prediction but the first half-window's sees at least half a
    window of context; `rows` windows go through the model at a time.

    Returns:
        float64 `(len(ids) - 1,)`: position `i` holds `-log P(ids[i + 1] | ...)`.
    """
    return _read_stream(model, ids, chunk_length, rows, _losses)


def token_log_probabilities(model, ids, *, chunk_length=64, rows=32):
    """The model's whole next-token distribution at every token of a stream but
    the last, the stream read as `token_cross_entropies` reads it.

    Returns:
        float32 `(len(ids) - 1, vocabulary size)`: row `i` holds
        `log P(. | ids[: i + 1])`, so `-row[i][ids[i + 1]]` is
        `token_cross_entropies(...)[i]`.
    """
    return _read_stream(model, ids, chunk_length, rows, _log_probabilities)


def _read_stream(model, ids, chunk_length, rows, per_token):
    # per_token(logits, targets) -> (batch, length, ...) for every read position.
    import numpy as np

    ids = np.asarray(ids, "int32")
    context = getattr(model, "sequence_length", None)
    if context:
        return _read_windows(model, ids, min(chunk_length, context), rows, per_token)
    return _read_carried(model, ids, chunk_length, rows, per_token)


def _read_carried(model, ids, chunk_length, rows, per_token):
    # `rows` contiguous rows, read chunk by chunk with the states carried on.
    import numpy as np
    import tensorflow as tf

    predicted = len(ids) - 1
    row_length = -(-predicted // rows)  # targets per row
    row_length = -(-row_length // chunk_length) * chunk_length
    inputs = np.zeros(rows * row_length, "int32")
    targets = np.zeros(rows * row_length, "int32")
    inputs[:predicted], targets[:predicted] = ids[:-1], ids[1:]
    inputs, targets = (a.reshape(rows, row_length) for a in (inputs, targets))

    @tf.function
    def read_chunk(x, y, cache, index):
        logits, cache = model.call_with_cache(x, cache, index)
        return per_token(logits, y), cache

    cache = model.initial_cache(rows, chunk_length)
    pieces = []
    for start in range(0, row_length, chunk_length):
        window = slice(start, start + chunk_length)
        values, cache = read_chunk(
            inputs[:, window], targets[:, window], cache, tf.constant(start, tf.int32)
        )
        pieces.append(values.numpy())
    values = np.concatenate(pieces, axis=1)
    return values.reshape(rows * row_length, *values.shape[2:])[:predicted]


def _read_windows(model, ids, window, rows, per_token):
    # Windows of `window` inputs every `stride` tokens; each scores its last
    # `stride` targets (the first window all of them).
    import numpy as np
    import tensorflow as tf

    predicted = len(ids) - 1
    stride = max(1, window // 2)
    starts = np.arange(0, max(1, predicted - window + stride), stride)
    positions = starts[:, None] + np.arange(window)[None, :]  # (windows, window)
    valid = positions < predicted
    scored = np.arange(window)[None, :] >= window - stride
    scored = valid & (scored | (starts[:, None] == 0))
    inputs = np.where(valid, ids[np.minimum(positions, predicted - 1)], 0)
    targets = np.where(valid, ids[np.minimum(positions + 1, predicted)], 0)

    @tf.function
    def read_windows(x, y):
        return per_token(model(x, training=False), y)

    out = None
    for first in range(0, len(starts), rows):
        batch = slice(first, first + rows)
        values = read_windows(inputs[batch], targets[batch]).numpy()
        if out is None:
            out = np.full((predicted, *values.shape[2:]), np.nan, values.dtype)
        out[positions[batch][scored[batch]]] = values[scored[batch]]
    return out


def _losses(logits, targets):
    import tensorflow as tf

    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        targets, tf.cast(logits, tf.float32)
    )
    return tf.cast(losses, tf.float64)


def _log_probabilities(logits, targets):
    import tensorflow as tf

    del targets
    return tf.nn.log_softmax(tf.cast(logits, tf.float32))


def mixture_cross_entropy(neural_losses, ngram_log_probs, weight=0.5) -> float:
    """Mean cross-entropy (nats) of `weight * P_neural + (1 - weight) * P_ngram`.

    Args:
        neural_losses: per-token negative log-probabilities of a neural model
            (`token_cross_entropies`).
        ngram_log_probs: the same tokens' log-probabilities under the n-gram
            model (`KneserNeyLanguageModel.token_log_probs`).
        weight: the neural model's share, in `[0, 1]`. Defaults to `0.5`.

    Returns:
        The mixture's mean negative log-likelihood per token, in nats.
    """
    import numpy as np

    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1]. Received: weight={weight}")
    neural = -np.asarray(neural_losses, "float64")
    ngram = np.asarray(ngram_log_probs, "float64")
    if neural.shape != ngram.shape:
        raise ValueError(
            "neural_losses and ngram_log_probs must score the same tokens. "
            f"Received: shapes {neural.shape} and {ngram.shape}"
        )
    with np.errstate(divide="ignore"):
        mixed = np.logaddexp(np.log(weight) + neural, np.log1p(-weight) + ngram)
    return float(-mixed.mean())


def split_metrics(split: str, losses) -> dict:
    """`<split>_cross_entropy`, `_perplexity`, `_bits_per_token` and
    `_tokens_predicted` of per-token losses in nats."""
    mean = float(losses.mean())
    return {
        f"{split}_cross_entropy": mean,
        f"{split}_perplexity": math.exp(mean),
        f"{split}_bits_per_token": mean / math.log(2),
        f"{split}_tokens_predicted": len(losses),
    }


def baseline_metrics(data, order: int):
    """`(metrics, log-probabilities)` of the interpolated Kneser-Ney `order`-gram
    fitted on the training stream, on the validation stream."""
    from kerasdl.models.ngram import KneserNeyLanguageModel

    ngram = KneserNeyLanguageModel(order=order).fit(
        data.train_ids, data.vocabulary.size
    )
    log_probs = ngram.token_log_probs(data.validation_ids)
    baseline = float(-log_probs.mean())
    metrics = {
        "baseline": f"interpolated Kneser-Ney, order {order}",
        "baseline_validation_perplexity": math.exp(baseline),
        "baseline_validation_bits_per_token": baseline / math.log(2),
    }
    return metrics, log_probs


def evaluate(model, config: LanguageModelingConfig, data) -> dict:
    """Train and validation perplexity over the whole streams, and the baseline."""
    metrics, losses = {}, {}
    for split, ids in (("train", data.train_ids), ("validation", data.validation_ids)):
        losses[split] = token_cross_entropies(
            model, ids, chunk_length=config.sequence_length
        )
        metrics.update(split_metrics(split, losses[split]))
    baseline, ngram_log_probs = baseline_metrics(data, config.ngram_order)
    metrics.update(baseline)
    # Not the model's figure: its probabilities averaged with the n-gram's
    # (equal weights, nothing tuned on the validation text).
    mixture = mixture_cross_entropy(losses["validation"], ngram_log_probs, 0.5)
    metrics["mixture"] = "0.5 * this model + 0.5 * the Kneser-Ney baseline"
    metrics["mixture_validation_perplexity"] = math.exp(mixture)
    metrics["mixture_validation_bits_per_token"] = mixture / math.log(2)
    return metrics


def text_model(model, data):
    """The `TextLanguageModel` (strings in, strings out) around a trained model."""
    from kerasdl.export.language_model import TextLanguageModel

    return TextLanguageModel(model, data.vocabulary, data.level)


def samples(text_model_, config: LanguageModelingConfig) -> list[dict]:
    """Seeded continuations of the fixed `PROMPTS` (plus a greedy one each)."""
    import tensorflow as tf

    prompts = tf.constant(PROMPTS)
    generate = tf.function(text_model_.generate)
    sampled = generate(
        prompts, config.sample_length, config.temperature, 0, 1.0, config.seed
    )
    greedy = generate(prompts, config.sample_length, 1.0, 1, 1.0, config.seed)
    return [
        {
            "prompt": prompt,
            "sampled": s.decode("utf-8"),
            "greedy": g.decode("utf-8"),
            "temperature": config.temperature,
            "seed": config.seed,
        }
        for prompt, s, g in zip(
            PROMPTS, sampled["continuation"].numpy(), greedy["continuation"].numpy()
        )
    ]


def dataset_card(data) -> dict:
    """The model card's `dataset` section of a `LanguageModelingDataset`."""
    return {
        "name": data.name,
        "level": data.level,
        "split": "contiguous: first 90% of the story trains, last 10% validates",
        "train_tokens": len(data.train_ids),
        "validation_tokens": len(data.validation_ids),
        "vocabulary_size": data.vocabulary.size,
        "input_dtype": "string",
    }


def signature_card() -> dict:
    """The model card's `signature` section of a language-model export."""
    from kerasdl.export.language_model import DEFAULTS

    # The sampling options are optional inputs; their defaults are in the
    # SignatureDef too.
    generation = {
        "inputs": {"prompt": [None], **{option: [] for option in DEFAULTS}},
        "optional_inputs": dict(DEFAULTS),
        "outputs": ["continuation", "continuation_ids", "continuation_length"],
    }
    return {
        "serving_default": generation,
        "generate": generation,
        "score": {
            "inputs": {"text": [None]},
            "outputs": ["negative_log_likelihood", "num_predicted"],
        },
    }


def model_card(
    config, data, model, metrics, fit_result, sample_list, *, recipe, pretraining=None
):
    """The model card dict written beside the export (`pretraining`: what
    `kerasdl.tasks.pretraining.pretrain` returned, in the training section)."""
    from kerasdl.export.model_card import build_model_card
    from kerasdl.tasks import steps

    card = build_model_card(
        recipe=recipe,
        config=dataclasses.asdict(config),
        dataset=dataset_card(data),
        metrics={**metrics, **steps.final_metrics(fit_result.history)},
        training=steps.training_summary(config, fit_result),
        parameter_count=model.count_params(),
        signature=signature_card(),
    )
    if pretraining is not None:
        card["training"]["pretraining"] = pretraining
    card["samples"] = sample_list
    return card


def export(text_model_, base_dir, *, card, extra_assets=None) -> str:
    """A new SavedModel version (strings in, strings out); returns its path."""
    from kerasdl.export.language_model import export_language_model

    return export_language_model(
        text_model_,
        base_dir,
        model_card=card,
        verification_texts=list(PROMPTS),
        extra_assets=extra_assets,
    )


# The pipeline ------------------------------------------------------------------------


def run(
    config: LanguageModelingConfig,
    workdir,
    recipe: str | None = None,
    restart: bool = False,
) -> LanguageModelingRunResult:
    """Trains a language model, reports perplexities, samples, exports; resumable."""
    from kerasdl import training
    from kerasdl.export import model_directory
    from kerasdl.plots import plot_learning_curves
    from kerasdl.recipes import default_dataset
    from kerasdl.tasks import steps
    from kerasdl.tasks.fit import fit

    check_config(config)
    if config.distill_from:
        from kerasdl.tasks.distillation import check_teacher

        check_teacher(config, workdir)
    recipe = recipe or config.model
    base_dir = model_directory(
        config.output, recipe, config.dataset, default_dataset(recipe)
    )
    with steps.open_run(config, workdir, recipe=recipe, restart=restart) as run_dir:
        steps.remove_stale_exports(base_dir)
        training.set_seed(config.seed)
        data = load_data(config)
        model, fit_model, callbacks = build_for_training(config, data, name=recipe)
        pretraining = None
        if config.pretrain_epochs:
            from kerasdl.tasks.pretraining import pretrain

            pretraining = pretrain(model, config, data, run_dir)
            # Training on the book starts with a fresh optimizer.
            steps_per_epoch = int(data.train.cardinality())
            compile_model(fit_model, config, steps_per_epoch=steps_per_epoch)
        training_data = data
        if config.distill_from:  # After the student's weights are drawn.
            from kerasdl.tasks.distillation import with_soft_targets

            training_data = with_soft_targets(data, config)
        steps.check_space(run_dir, config.output, model)
        fitted = fit(
            fit_model,
            training_data.train,
            training_data.validation,
            run_dir=run_dir,
            epochs=config.epochs,
            patience=config.early_stopping_patience,
            verbose=config.verbose,
            extra_callbacks=callbacks,
        )
        # Trained under a mixed policy, measured and exported in float32.
        model = in_float32(model, config, data, name=recipe)
        metrics = evaluate(model, config, data)
        text_model_ = text_model(model, data)
        sample_list = samples(text_model_, config)
        for sample in sample_list:
            print(f"  {sample['prompt']!r} -> {sample['sampled']!r}")
        curves = plot_learning_curves(
            fitted.history,
            run_dir.file("learning_curves.png"),
            title=f"{recipe} on {data.name}",
        )
        card = model_card(
            config,
            data,
            model,
            metrics,
            fitted,
            sample_list,
            recipe=recipe,
            pretraining=pretraining,
        )
        export_path = export(
            text_model_,
            base_dir,
            card=card,
            extra_assets={"learning_curves.png": curves},
        )
        run_dir.mark_published(export_path)
    return LanguageModelingRunResult(
        export_path, metrics, fitted.epochs_run, fitted.seconds, sample_list, card
    )


def report(result: LanguageModelingRunResult) -> None:
    """Prints what `run` returned, for the command line."""
    m = result.metrics
    print(
        f"Perplexity: train {m['train_perplexity']:.3f}, validation "
        f"{m['validation_perplexity']:.3f} ({m['validation_bits_per_token']:.3f} bits "
        f"per token); {m['baseline']}: validation "
        f"{m['baseline_validation_perplexity']:.3f} "
        f"({m['baseline_validation_bits_per_token']:.3f} bits per token) "
        f"({result.epochs_run} epochs, {result.training_seconds:.1f} s)"
    )
    print(f"Model exported to: {result.export_path}")
