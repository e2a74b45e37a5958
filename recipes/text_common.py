"""What the text recipes share: intent classification story, string-signature export.

    python -m kerasdl train rnn_intent                     # = python -m recipes.rnn_intent
    python -m kerasdl train transformer_intent --dataset sms_spam

Setup (seed) -> data (`kerasdl.data.load_text_dataset`, raw strings) -> adapt a
`TextVectorization` on the training texts -> model (`kerasdl.models`, strings in) ->
`model.fit` with validation data, kerasdl EarlyStopping, CSV + TensorBoard logs ->
test accuracy and F1 -> a new SavedModel version whose `serving_default(text)` returns
`probabilities`, `class_id` and the class name `label` (tf.string), with model card.

`export_signatures` is the generic export used here and by the translation recipes:
same layout and atomic publication as `kerasdl.export.export_saved_model`, but with
any set of tf.string (or other) signatures.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TextClassificationConfig:
    """Every hyperparameter of an intent (text classification) run."""

    model: str = field(default="rnn", metadata={"choices": ("rnn", "transformer")})
    dataset: str = field(
        default="banking77", metadata={"help": "banking77, sms_spam or imdb_reviews"}
    )
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    lr_schedule: str = field(
        default="cosine", metadata={"choices": ("constant", "cosine")}
    )
    weight_decay: float = 0.0  # AdamW's decoupled weight decay (0 = Adam).
    max_tokens: int = 20_000  # Vocabulary size cap, padding and OOV included.
    sequence_length: int = 64  # Tokens kept per text (padded / truncated).
    embedding_dim: int = 128
    units: int = 128  # RNN units per direction.
    num_layers: int = 1
    bidirectional: bool = False
    cell: str = field(default="gru", metadata={"choices": ("gru", "lstm")})
    hidden_dim: int = 128  # Transformer width.
    num_heads: int = 4
    intermediate_dim: int = 256
    dropout: float = 0.2
    label_smoothing: float = 0.0
    early_stopping_patience: int = 5  # Epochs without val_loss improvement.
    seed: int = 0
    data_dir: str | None = None  # tensorflow-datasets directory (imdb_reviews).
    download: bool = False
    limit: int | None = None  # Cap on examples per split (smoke tests).
    output: str = "saved_models"
    verbose: str = field(
        default="auto",
        metadata={
            "choices": ("auto", "0", "1", "2"),
            "help": "fit's progress: 1 bar, 2 lines",
        },
    )


@dataclass
class TextRunResult:
    export_path: str | None
    test_accuracy: float
    test_f1: float
    epochs_run: int
    training_seconds: float
    model_card: dict


def train_and_evaluate(
    config: TextClassificationConfig, workdir: str, recipe: str
) -> TextRunResult:
    """Trains, evaluates (accuracy, F1) and exports a text classifier; see module doc."""
    import keras
    import numpy as np
    import tensorflow as tf
    from sklearn.metrics import f1_score

    from kerasdl import training
    from kerasdl.callbacks.early_stopping import EarlyStopping
    from kerasdl.callbacks.terminate_on_non_finite_loss import TerminateOnNonFiniteLoss
    from kerasdl.data.text_classification import load_text_dataset
    from kerasdl.models.text_classifier import (
        rnn_text_classifier,
        transformer_text_classifier,
    )

    workdir = str(workdir)
    os.makedirs(workdir, exist_ok=True)
    training.set_seed(config.seed)

    # Data: raw strings and int labels -----------------------------------------------
    try:
        data = load_text_dataset(
            config.dataset,
            batch_size=config.batch_size,
            data_dir=config.data_dir,
            seed=config.seed,
            limit=config.limit,
            download=config.download,
        )
    except ValueError as error:
        raise training.UsageError(error) from None
    vectorizer = keras.layers.TextVectorization(
        max_tokens=config.max_tokens,
        output_sequence_length=config.sequence_length,
        name="text_vectorization",
    )
    vectorizer.adapt(data.train_texts.batch(1024))

    # Model ------------------------------------------------------------------------
    try:
        if config.model == "rnn":
            model = rnn_text_classifier(
                vectorizer,
                data.num_classes,
                embedding_dim=config.embedding_dim,
                units=config.units,
                num_layers=config.num_layers,
                bidirectional=config.bidirectional,
                cell=config.cell,
                dropout=config.dropout,
                name=recipe,
            )
        else:
            model = transformer_text_classifier(
                vectorizer,
                data.num_classes,
                hidden_dim=config.hidden_dim,
                num_layers=config.num_layers,
                num_heads=config.num_heads,
                intermediate_dim=config.intermediate_dim,
                dropout=config.dropout,
                name=recipe,
            )
    except ValueError as error:
        raise training.UsageError(error) from None
    steps_per_epoch = max(1, -(-data.num_examples["train"] // config.batch_size))
    model.compile(
        optimizer=make_optimizer(
            config.learning_rate,
            config.lr_schedule,
            config.epochs * steps_per_epoch,
            config.weight_decay,
        ),
        loss=keras.losses.CategoricalCrossentropy(
            label_smoothing=config.label_smoothing
        )
        if config.label_smoothing
        else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    train, validation, test = data.train, data.validation, data.test
    if config.label_smoothing:  # One-hot targets for the smoothed loss.

        def one_hot(texts, labels):
            return texts, tf.one_hot(labels, data.num_classes)

        train, validation = train.map(one_hot), validation.map(one_hot)

    # Train ------------------------------------------------------------------------
    early_stopping = EarlyStopping(
        monitor="val_loss",
        patience=config.early_stopping_patience,
        restore_best_weights=True,
        verbose=1,
    )
    log_path = os.path.join(workdir, "training_log.csv")
    callbacks = [
        TerminateOnNonFiniteLoss(),
        early_stopping,
        keras.callbacks.CSVLogger(log_path),
        *training.tensorboard_callbacks(os.path.join(workdir, "tensorboard")),
    ]
    start = time.perf_counter()
    history = model.fit(
        train,
        validation_data=validation,
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=_verbose(config.verbose),
    )
    training_seconds = time.perf_counter() - start
    epochs_run = len(history.epoch)

    # Evaluate: accuracy, and F1 (binary: of the positive class; else macro) ----------
    texts, labels = zip(*[(x.numpy(), y.numpy()) for x, y in test])
    texts, labels = np.concatenate(texts), np.concatenate(labels)
    predicted = np.argmax(model.predict(test, verbose=0), axis=-1)
    test_accuracy = float(np.mean(predicted == labels))
    average = "binary" if data.num_classes == 2 else "macro"
    test_f1 = float(f1_score(labels, predicted, average=average))
    curves = training.plot_learning_curves(
        training.read_history(log_path),
        os.path.join(workdir, "learning_curves.png"),
        title=f"{recipe} on {data.name}",
    )

    # Export: strings in; probabilities, class id and class name out ----------------------
    card = training.build_model_card(
        recipe=recipe,
        config=dataclasses.asdict(config),
        dataset={
            "name": data.name,
            "num_examples": data.num_examples,
            "num_classes": data.num_classes,
            "class_names": data.class_names,
            "input_dtype": "string",
            "vocabulary_size": vectorizer.vocabulary_size(),
        },
        metrics={
            "test_accuracy": test_accuracy,
            f"test_f1_{average}": test_f1,
            **{f"final_{k}": float(v[-1]) for k, v in history.history.items()},
        },
        training={
            "epochs_run": epochs_run,
            "epochs_requested": config.epochs,
            "early_stopped": epochs_run < config.epochs,
            "best_epoch": None
            if early_stopping.best_epoch is None
            else int(early_stopping.best_epoch) + 1,
            "training_seconds": round(training_seconds, 2),
            "workdir": os.path.abspath(workdir),
        },
        parameter_count=model.count_params(),
        signature={
            "serving_default": {
                "inputs": {"text": [None], "dtype": "string"},
                "outputs": {
                    "probabilities": [None, data.num_classes],
                    "class_id": [None],
                    "label": [None],
                },
            }
        },
    )
    export_path = export_text_classifier(
        model,
        export_base(config.output, recipe, data.name),
        class_names=data.class_names,
        model_card=card,
        verification_texts=list(texts[:64]),
        extra_assets={"learning_curves.png": curves} if curves else None,
    )
    return TextRunResult(
        export_path, test_accuracy, test_f1, epochs_run, training_seconds, card
    )


def make_optimizer(
    learning_rate: float, schedule: str, total_steps: int, weight_decay: float = 0.0
):
    """Adam (AdamW when `weight_decay`), constant or cosine-decayed learning rate."""
    import keras

    if schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=max(1, total_steps)
        )
    if weight_decay:
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    return keras.optimizers.Adam(learning_rate)


def export_base(output: str, recipe: str, dataset: str) -> str:
    """saved_models/<recipe>; a recipe trained on another dataset gets its own name."""
    from recipes import RECIPES

    default = RECIPES[recipe].dataset if recipe in RECIPES else dataset
    return os.path.join(output, recipe if dataset == default else f"{recipe}-{dataset}")


def _verbose(value: str):
    return value if value == "auto" else int(value)


# Export ------------------------------------------------------------------------------


def export_signatures(
    track: list,
    base_dir: str | os.PathLike,
    endpoints: Mapping[str, tuple[Callable, list]],
    *,
    model_card: Mapping | None = None,
    verify: Callable[[str], None] | None = None,
    extra_assets: Mapping[str, str] | None = None,
) -> str:
    """Writes `<base_dir>/<N>/` (next free N) with the given signatures; returns its path.

    Like `kerasdl.export.export_saved_model`: written into `.tmp-<uuid>` in the same
    base, the model card put in `assets.extra/model_card.json`, `verify(tmp_dir)`
    called (it should reload the SavedModel and raise `ExportError` on a mismatch),
    then renamed into place; nothing is left behind on failure.

    Args:
        track: Keras layers/models whose variables the endpoints use.
        base_dir: the model's directory, e.g. `saved_models/rnn_intent`.
        endpoints: signature name -> `(function, input_signature)`.
        model_card: JSON-serialisable dict. Defaults to `None` (empty card).
        verify: check run on the written directory before publishing. Defaults to
            `None`.
        extra_assets: `{file name: source path}` copied into `assets.extra/`.
    """
    import keras

    from kerasdl.export import MODEL_CARD_PATH, check_weights_finite
    from kerasdl.export.saved_model import rename_into_place

    for item in track:
        check_weights_finite(item)
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = base_dir / f".tmp-{uuid.uuid4().hex}"
    try:
        archive = keras.export.ExportArchive()
        for item in track:
            archive.track(item)
        for name, (function, input_signature) in endpoints.items():
            archive.add_endpoint(name, function, input_signature=input_signature)
        archive.write_out(str(tmp_dir), verbose=False)
        (tmp_dir / "assets.extra").mkdir(exist_ok=True)
        with open(tmp_dir / MODEL_CARD_PATH, "w") as file:
            json.dump(
                dict(model_card or {}), file, indent=2, sort_keys=True, default=str
            )
        for name, source in (extra_assets or {}).items():
            if source and os.path.exists(source):
                shutil.copyfile(source, tmp_dir / "assets.extra" / name)
        if verify is not None:
            verify(str(tmp_dir))
        return rename_into_place(tmp_dir, base_dir).path
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)


def export_text_classifier(
    model,
    base_dir: str | os.PathLike,
    *,
    class_names: list[str],
    model_card: Mapping | None = None,
    verification_texts: list | None = None,
    extra_assets: Mapping[str, str] | None = None,
    atol: float = 1e-5,
) -> str:
    """Exports a strings-in classifier: `serving_default(text)` -> probabilities,
    class_id (int64) and label (tf.string class name); returns the version path."""
    import numpy as np
    import tensorflow as tf

    from kerasdl.export import ExportError

    names = tf.constant(list(class_names), tf.string)
    spec = [tf.TensorSpec([None], tf.string, name="text")]

    def serving_default(text):
        probabilities = tf.cast(model(text, training=False), tf.float32)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {
            "probabilities": probabilities,
            "class_id": class_id,
            "label": tf.gather(names, class_id),
        }

    texts = tf.constant(verification_texts or ["hello", "", "a longer test sentence"])

    def verify(path):
        expected = np.asarray(model(texts, training=False), np.float32)
        outputs = tf.saved_model.load(path).signatures["serving_default"](text=texts)
        received = outputs["probabilities"].numpy()
        if received.shape != expected.shape or not np.allclose(
            received, expected, atol=atol
        ):
            raise ExportError(
                "The reloaded SavedModel does not reproduce the in-memory predictions."
            )
        labels = [class_names[i] for i in np.argmax(received, axis=-1)]
        if [label.decode() for label in outputs["label"].numpy()] != labels:
            raise ExportError(
                "The reloaded SavedModel's label is not its argmax class."
            )

    return export_signatures(
        [model],
        base_dir,
        {"serving_default": (serving_default, spec)},
        model_card=model_card,
        verify=verify,
        extra_assets=extra_assets,
    )


# Command line ------------------------------------------------------------------------


def main(
    defaults: TextClassificationConfig,
    argv=None,
    *,
    recipe: str,
    prog: str | None = None,
) -> int:
    """Parses flags over `defaults`, trains, prints the figures; exit status."""
    from kerasdl import training

    parser = training.ArgumentParser(
        prog=prog or f"python -m recipes.{recipe}",
        description=f"Train, evaluate and export the {recipe} recipe.",
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help=f"logs and curves (default: runs/{recipe}/<dataset>)",
    )
    training.add_config_arguments(parser, defaults, skip=("model",))
    args = parser.parse_args(argv)
    config = training.config_from_args(defaults, args)
    workdir = args.workdir or os.path.join("runs", recipe, config.dataset)
    training.configure_logging()

    def run():
        result = train_and_evaluate(config, workdir, recipe=recipe)
        print(
            f"Test accuracy: {result.test_accuracy:.4f}, F1: {result.test_f1:.4f} "
            f"({result.epochs_run} epochs, {result.training_seconds:.1f} s)"
        )
        print(f"Model exported to: {result.export_path}")

    return training.run_with_exit_codes(run)


# Translation -------------------------------------------------------------------------
#
#     python -m kerasdl train seq2seq_attention      # = python -m recipes.seq2seq_attention
#     python -m kerasdl train transformer_translate
#
# Data (`kerasdl.data.load_translation_dataset`, test held out by English sentence)
# -> word vocabularies (`TextVectorization` on standardized text; the target wrapped
# in `[start] ... [end]`) -> model (`kerasdl.models`) trained with teacher forcing by
# `model.fit` (loss and token accuracy ignore padding) -> greedy and beam decoding
# (`kerasdl.decoding`) of the test split, BLEU with sacrebleu, sample translations,
# an attention heat map -> a SavedModel whose `serving_default` maps raw English
# strings to French strings (standardize -> tokenize -> encode -> beam search ->
# detokenize, all in the graph), with `greedy_decode` and `beam_decode` signatures.

START, END = "[start]", "[end]"


@dataclass
class TranslationConfig:
    """Every hyperparameter of a translation run."""

    model: str = field(
        default="seq2seq", metadata={"choices": ("seq2seq", "transformer")}
    )
    dataset: str = field(
        default="fra_eng",
        metadata={"help": "fra_eng, ted_hrlr_translate or wmt14_translate"},
    )
    max_words: int = 10  # Source sentences of at most this many words.
    max_target_tokens: int = 20  # Target tokens (punctuation included) kept.
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = field(
        default="cosine", metadata={"choices": ("constant", "cosine")}
    )
    warmup_steps: int = 0  # Linear warm-up before the schedule (Transformer).
    max_tokens: int = 15_000  # Vocabulary cap per language.
    embedding_dim: int = 256  # seq2seq.
    units: int = 256  # seq2seq GRU units.
    hidden_dim: int = 256  # Transformer width.
    num_layers: int = 2
    num_heads: int = 4
    intermediate_dim: int = 512
    dropout: float = 0.2
    beam_size: int = 4
    length_penalty_alpha: float = 0.6
    early_stopping_patience: int = 3
    test_limit: int | None = None  # Decode only the first N test sentences.
    num_samples: int = 8  # Sample translations printed and plotted (heat maps: 4).
    seed: int = 0
    data_dir: str | None = None
    download: bool = False
    limit: int | None = None  # Cap on pairs per split (smoke tests).
    output: str = "saved_models"
    verbose: str = field(
        default="auto",
        metadata={
            "choices": ("auto", "0", "1", "2"),
            "help": "fit's progress: 1 bar, 2 lines",
        },
    )


@dataclass
class TranslationRunResult:
    export_path: str
    bleu_beam: float
    bleu_greedy: float
    epochs_run: int
    training_seconds: float
    samples: list
    model_card: dict
    translator: Translator | None = None


class Translator:
    """Strings in, strings out: vectorizers + model + `kerasdl.decoding`, in TensorFlow.

    `translate(texts, beam_size)` runs eagerly or inside `tf.function`; the exported
    signatures call exactly this code.
    """

    def __init__(
        self,
        model,
        source_vectorizer,
        target_vectorizer,
        max_length: int,
        length_penalty_alpha: float = 0.0,
    ):
        import tensorflow as tf

        self.model = model
        self.source_vectorizer = source_vectorizer
        self.target_vectorizer = target_vectorizer
        self.vocabulary = list(target_vectorizer.get_vocabulary())
        self.start_id = self.vocabulary.index(START)
        self.end_id = self.vocabulary.index(END)
        self.max_length = max_length
        self.length_penalty_alpha = length_penalty_alpha
        self._vocabulary_tensor = tf.constant(self.vocabulary)

    def source_ids(self, texts):
        from kerasdl.data.text_translation import standardize_text

        return self.source_vectorizer(standardize_text(texts))

    def generate(self, texts, beam_size: int = 1):
        """`(batch,)` tf.string -> int32 `(batch, max_length)` ids (start token first)."""
        return self.model.generate(
            self.source_ids(texts),
            self.start_id,
            self.end_id,
            self.max_length,
            beam_size=beam_size,
            length_penalty_alpha=self.length_penalty_alpha,
        )

    def translate(self, texts, beam_size: int = 1):
        """`(batch,)` tf.string -> `(batch,)` tf.string translations."""
        from kerasdl.data.text_translation import detokenize

        tokens = self.generate(texts, beam_size)
        return detokenize(tokens[:, 1:], self._vocabulary_tensor, self.end_id)


def train_and_evaluate_translation(
    config: TranslationConfig, workdir: str, recipe: str
) -> TranslationRunResult:
    """Trains a translator, reports BLEU (greedy and beam), exports; see above."""
    import keras
    import sacrebleu
    import tensorflow as tf

    from kerasdl import training
    from kerasdl.callbacks.early_stopping import EarlyStopping
    from kerasdl.callbacks.terminate_on_non_finite_loss import TerminateOnNonFiniteLoss
    from kerasdl.data.text_translation import load_translation_dataset, standardize_text
    from kerasdl.models.seq2seq import Seq2SeqAttention
    from kerasdl.models.transformer_translator import TransformerTranslator

    workdir = str(workdir)
    os.makedirs(workdir, exist_ok=True)
    training.set_seed(config.seed)

    # Data and vocabularies ----------------------------------------------------------------
    try:
        data = load_translation_dataset(
            config.dataset,
            max_words=config.max_words,
            max_target_tokens=config.max_target_tokens,
            seed=config.seed,
            limit=config.limit,
            data_dir=config.data_dir,
            download=config.download,
        )
    except ValueError as error:
        raise training.UsageError(error) from None
    source_length = 2 * config.max_words + 2  # Words plus split-off punctuation.
    target_length = config.max_target_tokens + 2  # [start] ... [end]
    source_vectorizer = keras.layers.TextVectorization(
        max_tokens=config.max_tokens,
        standardize=None,
        split="whitespace",
        output_sequence_length=source_length,
        name="source_vectorization",
    )
    target_vectorizer = keras.layers.TextVectorization(
        max_tokens=config.max_tokens,
        standardize=None,
        split="whitespace",
        output_sequence_length=target_length,
        name="target_vectorization",
    )

    def wrap(targets):
        return tf.strings.join([START, standardize_text(targets), END], separator=" ")

    source_vectorizer.adapt(
        data.train.batch(1024).map(lambda s, t: standardize_text(s))
    )
    target_vectorizer.adapt(data.train.batch(1024).map(lambda s, t: wrap(t)))

    def to_model_inputs(sources, targets):
        target_ids = target_vectorizer(wrap(targets))  # (batch, target_length)
        inputs = {
            "source": source_vectorizer(standardize_text(sources)),
            "target_in": target_ids[:, :-1],
        }
        target_out = target_ids[:, 1:]
        return inputs, target_out, tf.cast(tf.not_equal(target_out, 0), tf.float32)

    def pipeline(dataset, training_split):
        if training_split:
            dataset = dataset.shuffle(
                min(data.num_examples["train"], 50_000),
                seed=config.seed,
                reshuffle_each_iteration=True,
            )
        dataset = dataset.batch(config.batch_size).map(
            to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE
        )
        return (
            dataset.cache().prefetch(tf.data.AUTOTUNE)
            if not training_split
            else (dataset.prefetch(tf.data.AUTOTUNE))
        )

    train, validation = pipeline(data.train, True), pipeline(data.validation, False)

    # Model --------------------------------------------------------------------------------
    sizes = (source_vectorizer.vocabulary_size(), target_vectorizer.vocabulary_size())
    try:
        if config.model == "seq2seq":
            model = Seq2SeqAttention(
                *sizes,
                embedding_dim=config.embedding_dim,
                units=config.units,
                dropout=config.dropout,
                name=recipe,
            )
        else:
            model = TransformerTranslator(
                *sizes,
                hidden_dim=config.hidden_dim,
                num_layers=config.num_layers,
                num_heads=config.num_heads,
                intermediate_dim=config.intermediate_dim,
                dropout=config.dropout,
                name=recipe,
            )
    except ValueError as error:
        raise training.UsageError(error) from None
    steps_per_epoch = max(1, -(-data.num_examples["train"] // config.batch_size))
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0 if config.warmup_steps else config.learning_rate,
            decay_steps=max(1, config.epochs * steps_per_epoch - config.warmup_steps),
            warmup_target=config.learning_rate if config.warmup_steps else None,
            warmup_steps=config.warmup_steps,
        )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=["accuracy"],  # Token accuracy on real (unpadded) tokens.
    )

    # Train with teacher forcing -------------------------------------------------------------
    early_stopping = EarlyStopping(
        monitor="val_loss",
        patience=config.early_stopping_patience,
        restore_best_weights=True,
        verbose=1,
    )
    log_path = os.path.join(workdir, "training_log.csv")
    callbacks = [
        TerminateOnNonFiniteLoss(),
        early_stopping,
        keras.callbacks.CSVLogger(log_path),
        *training.tensorboard_callbacks(os.path.join(workdir, "tensorboard")),
    ]
    start = time.perf_counter()
    history = model.fit(
        train,
        validation_data=validation,
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=_verbose(config.verbose),
    )
    training_seconds = time.perf_counter() - start
    epochs_run = len(history.epoch)

    # Decode the test split, BLEU --------------------------------------------------------------
    translator = Translator(
        model,
        source_vectorizer,
        target_vectorizer,
        target_length,
        config.length_penalty_alpha,
    )
    greedy = tf.function(lambda texts: translator.translate(texts, 1))
    beam = tf.function(lambda texts: translator.translate(texts, config.beam_size))
    sources = data.test_sources[: config.test_limit]
    references = [
        [_standardized_reference(r) for r in refs]
        for refs in data.test_references[: config.test_limit]
    ]
    hypotheses = {}
    for name, function in (("greedy", greedy), ("beam", beam)):
        outputs = []
        for first in range(0, len(sources), 256):
            batch = tf.constant(sources[first : first + 256])
            outputs += [t.decode("utf-8") for t in function(batch).numpy()]
        hypotheses[name] = outputs
    most = max(len(refs) for refs in references)
    streams = [
        [refs[i] if i < len(refs) else None for refs in references] for i in range(most)
    ]
    metric = sacrebleu.BLEU()
    bleu = {
        name: metric.corpus_score(hyps, streams) for name, hyps in hypotheses.items()
    }
    signature = str(metric.get_signature())
    single = sacrebleu.BLEU().corpus_score(
        hypotheses["beam"], [[refs[0] for refs in references]]
    )
    samples = [
        {"source": s, "beam": b, "greedy": g, "references": r}
        for s, b, g, r in zip(
            sources, hypotheses["beam"], hypotheses["greedy"], references
        )
    ][: config.num_samples]
    for sample in samples:
        print(
            f"  {sample['source']!r} -> {sample['beam']!r}  "
            f"(greedy {sample['greedy']!r}; reference {sample['references'][0]!r})"
        )
    heat_map = plot_attention(
        translator, sources[:4], os.path.join(workdir, "attention.png")
    )
    curves = training.plot_learning_curves(
        training.read_history(log_path),
        os.path.join(workdir, "learning_curves.png"),
        title=f"{recipe} on {data.name}",
    )

    # Export: raw English strings in, French strings out ---------------------------------------
    card = training.build_model_card(
        recipe=recipe,
        config=dataclasses.asdict(config),
        dataset={
            "name": data.name,
            "num_examples": data.num_examples,
            "source_language": data.source_language,
            "target_language": data.target_language,
            "source_vocabulary_size": sizes[0],
            "target_vocabulary_size": sizes[1],
            "input_dtype": "string",
        },
        metrics={
            "test_bleu_beam": bleu["beam"].score,
            "test_bleu_greedy": bleu["greedy"].score,
            "test_bleu_beam_single_reference": single.score,
            "bleu_signature": signature,
            "test_sentences_decoded": len(sources),
            **{f"final_{k}": float(v[-1]) for k, v in history.history.items()},
        },
        training={
            "epochs_run": epochs_run,
            "epochs_requested": config.epochs,
            "early_stopped": epochs_run < config.epochs,
            "training_seconds": round(training_seconds, 2),
            "workdir": os.path.abspath(workdir),
        },
        parameter_count=model.count_params(),
        signature={
            name: {
                "inputs": {"text": [None], "dtype": "string"},
                "outputs": {"translation": [None]},
            }
            for name in ("serving_default", "greedy_decode", "beam_decode")
        },
    )
    card["samples"] = samples
    export_path = export_translator(
        translator,
        export_base(config.output, recipe, data.name),
        beam_size=config.beam_size,
        model_card=card,
        verification_texts=sources[:16],
        extra_assets={"learning_curves.png": curves, "attention.png": heat_map},
    )
    return TranslationRunResult(
        export_path,
        bleu["beam"].score,
        bleu["greedy"].score,
        epochs_run,
        training_seconds,
        samples,
        card,
        translator,
    )


def _standardized_reference(text: str) -> str:
    """A reference as the model writes its output: lowercase, `.`/`,` attached."""
    import tensorflow as tf

    from kerasdl.data.text_translation import standardize_text

    standardized = standardize_text(tf.constant([text]))[0].numpy().decode("utf-8")
    return standardized.replace(" .", ".").replace(" ,", ",")


def export_translator(
    translator: Translator,
    base_dir: str | os.PathLike,
    *,
    beam_size: int,
    model_card: Mapping | None = None,
    verification_texts: list | None = None,
    extra_assets: Mapping[str, str] | None = None,
) -> str:
    """Exports `serving_default` (beam), `beam_decode` and `greedy_decode`:
    `text` `(batch,)` tf.string -> `translation` `(batch,)` tf.string."""
    import tensorflow as tf

    from kerasdl.export import ExportError

    spec = [tf.TensorSpec([None], tf.string, name="text")]

    def beam_decode(text):
        return {"translation": translator.translate(text, beam_size)}

    def greedy_decode(text):
        return {"translation": translator.translate(text, 1)}

    texts = tf.constant(verification_texts or ["I am cold.", "Hello!"])

    def verify(path):
        reloaded = tf.saved_model.load(path)
        for name, function in (
            ("serving_default", beam_decode),
            ("greedy_decode", greedy_decode),
        ):
            expected = function(texts)["translation"].numpy()
            received = reloaded.signatures[name](text=texts)["translation"].numpy()
            if list(received) != list(expected):
                raise ExportError(
                    f"The reloaded SavedModel's {name} does not reproduce the in-memory "
                    f"translations: {received[:3]} != {expected[:3]}."
                )

    return export_signatures(
        [translator.model, translator.source_vectorizer, translator.target_vectorizer],
        base_dir,
        {
            "serving_default": (beam_decode, spec),
            "beam_decode": (beam_decode, spec),
            "greedy_decode": (greedy_decode, spec),
        },
        model_card=model_card,
        verify=verify,
        extra_assets=extra_assets,
    )


def plot_attention(
    translator: Translator, sources: list[str], png_path: str
) -> str | None:
    """Heat maps of the attention weights (greedy translation) of a few sentences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import tensorflow as tf

    from kerasdl.data.text_translation import standardize_text

    if not sources:
        return None
    texts = tf.constant(sources)
    tokens = translator.generate(texts, 1).numpy()  # (n, max_length)
    weights = np.asarray(
        translator.model.attention_weights(translator.source_ids(texts), tokens[:, :-1])
    )  # (n, T, S)
    words = [t.decode("utf-8").split() for t in standardize_text(texts).numpy()]
    figure, axes = plt.subplots(
        1, len(sources), figsize=(4.5 * len(sources), 4.5), squeeze=False
    )
    for axis, row, weight, source_words in zip(axes[0], tokens, weights, words):
        generated = []
        for token in row[1:]:
            generated.append(translator.vocabulary[token])
            if token == translator.end_id:
                break
        matrix = weight[: len(generated), : len(source_words)]
        axis.imshow(matrix, cmap="viridis", aspect="auto")
        axis.set_xticks(range(len(source_words)), source_words, rotation=60, fontsize=8)
        axis.set_yticks(range(len(generated)), generated, fontsize=8)
    figure.suptitle("Attention: generated (rows) over source (columns)")
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return png_path


def translation_main(
    defaults: TranslationConfig, argv=None, *, recipe: str, prog: str | None = None
) -> int:
    """Parses flags over `defaults`, trains, prints BLEU; exit status."""
    from kerasdl import training

    parser = training.ArgumentParser(
        prog=prog or f"python -m recipes.{recipe}",
        description=f"Train, evaluate (BLEU) and export the {recipe} recipe.",
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help=f"logs, curves, attention map (default: runs/{recipe}/<dataset>)",
    )
    training.add_config_arguments(parser, defaults, skip=("model",))
    args = parser.parse_args(argv)
    config = training.config_from_args(defaults, args)
    workdir = args.workdir or os.path.join("runs", recipe, config.dataset)
    training.configure_logging()

    def run():
        result = train_and_evaluate_translation(config, workdir, recipe=recipe)
        print(
            f"Test BLEU: beam {result.bleu_beam:.2f}, greedy {result.bleu_greedy:.2f} "
            f"({result.epochs_run} epochs, {result.training_seconds:.1f} s)"
        )
        print(f"Model exported to: {result.export_path}")

    return training.run_with_exit_codes(run)
