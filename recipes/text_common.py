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
    lr_schedule: str = field(default="cosine", metadata={"choices": ("constant", "cosine")})
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
    pooling: str = field(default="mean", metadata={"choices": ("mean", "max")})
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
        metadata={"choices": ("auto", "0", "1", "2"), "help": "fit's progress: 1 bar, 2 lines"},
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
                vectorizer, data.num_classes, embedding_dim=config.embedding_dim,
                units=config.units, num_layers=config.num_layers,
                bidirectional=config.bidirectional, cell=config.cell,
                dropout=config.dropout, name=recipe)
        else:
            model = transformer_text_classifier(
                vectorizer, data.num_classes, hidden_dim=config.hidden_dim,
                num_layers=config.num_layers, num_heads=config.num_heads,
                intermediate_dim=config.intermediate_dim, dropout=config.dropout,
                pooling=config.pooling, name=recipe)
    except ValueError as error:
        raise training.UsageError(error) from None
    steps_per_epoch = max(1, -(-data.num_examples["train"] // config.batch_size))
    model.compile(
        optimizer=make_optimizer(config.learning_rate, config.lr_schedule,
                                 config.epochs * steps_per_epoch, config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
        if config.label_smoothing else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    train, validation, test = data.train, data.validation, data.test
    if config.label_smoothing:  # One-hot targets for the smoothed loss.
        def one_hot(texts, labels):
            return texts, tf.one_hot(labels, data.num_classes)

        train, validation = train.map(one_hot), validation.map(one_hot)

    # Train ------------------------------------------------------------------------
    early_stopping = EarlyStopping(
        monitor="val_loss", patience=config.early_stopping_patience,
        restore_best_weights=True, verbose=1)
    log_path = os.path.join(workdir, "training_log.csv")
    callbacks = [TerminateOnNonFiniteLoss(), early_stopping,
                 keras.callbacks.CSVLogger(log_path),
                 *training.tensorboard_callbacks(os.path.join(workdir, "tensorboard"))]
    start = time.perf_counter()
    history = model.fit(train, validation_data=validation, epochs=config.epochs,
                        callbacks=callbacks, verbose=_verbose(config.verbose))
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
        training.read_history(log_path), os.path.join(workdir, "learning_curves.png"),
        title=f"{recipe} on {data.name}")

    # Export: strings in; probabilities, class id and class name out ----------------------
    card = training.build_model_card(
        recipe=recipe,
        config=dataclasses.asdict(config),
        dataset={"name": data.name, "num_examples": data.num_examples,
                 "num_classes": data.num_classes, "class_names": data.class_names,
                 "input_dtype": "string",
                 "vocabulary_size": vectorizer.vocabulary_size()},
        metrics={"test_accuracy": test_accuracy, f"test_f1_{average}": test_f1,
                 **{f"final_{k}": float(v[-1]) for k, v in history.history.items()}},
        training={"epochs_run": epochs_run, "epochs_requested": config.epochs,
                  "early_stopped": epochs_run < config.epochs,
                  "best_epoch": None if early_stopping.best_epoch is None
                  else int(early_stopping.best_epoch) + 1,
                  "training_seconds": round(training_seconds, 2),
                  "workdir": os.path.abspath(workdir)},
        parameter_count=model.count_params(),
        signature={"serving_default": {
            "inputs": {"text": [None], "dtype": "string"},
            "outputs": {"probabilities": [None, data.num_classes], "class_id": [None],
                        "label": [None]}}},
    )
    export_path = export_text_classifier(
        model, export_base(config.output, recipe, data.name),
        class_names=data.class_names, model_card=card,
        verification_texts=list(texts[:64]),
        extra_assets={"learning_curves.png": curves} if curves else None)
    return TextRunResult(export_path, test_accuracy, test_f1, epochs_run,
                         training_seconds, card)


def make_optimizer(learning_rate: float, schedule: str, total_steps: int,
                   weight_decay: float = 0.0):
    """Adam (AdamW when `weight_decay`), constant or cosine-decayed learning rate."""
    import keras

    if schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=max(1, total_steps))
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
    from kerasdl.export.saved_model import _rename_into_place

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
            json.dump(dict(model_card or {}), file, indent=2, sort_keys=True, default=str)
        for name, source in (extra_assets or {}).items():
            if source and os.path.exists(source):
                shutil.copyfile(source, tmp_dir / "assets.extra" / name)
        if verify is not None:
            verify(str(tmp_dir))
        return _rename_into_place(tmp_dir, base_dir).path
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
        return {"probabilities": probabilities, "class_id": class_id,
                "label": tf.gather(names, class_id)}

    texts = tf.constant(verification_texts or ["hello", "", "a longer test sentence"])

    def verify(path):
        expected = np.asarray(model(texts, training=False), np.float32)
        outputs = tf.saved_model.load(path).signatures["serving_default"](text=texts)
        received = outputs["probabilities"].numpy()
        if received.shape != expected.shape or not np.allclose(received, expected, atol=atol):
            raise ExportError(
                "The reloaded SavedModel does not reproduce the in-memory predictions.")
        labels = [class_names[i] for i in np.argmax(received, axis=-1)]
        if [label.decode() for label in outputs["label"].numpy()] != labels:
            raise ExportError("The reloaded SavedModel's label is not its argmax class.")

    return export_signatures(
        [model], base_dir, {"serving_default": (serving_default, spec)},
        model_card=model_card, verify=verify, extra_assets=extra_assets)


# Command line ------------------------------------------------------------------------


def main(defaults: TextClassificationConfig, argv=None, *, recipe: str,
         prog: str | None = None) -> int:
    """Parses flags over `defaults`, trains, prints the figures; exit status."""
    from kerasdl import training

    parser = training.ArgumentParser(
        prog=prog or f"python -m recipes.{recipe}",
        description=f"Train, evaluate and export the {recipe} recipe.")
    parser.add_argument("--workdir", default=None,
                        help=f"logs and curves (default: runs/{recipe}/<dataset>)")
    training.add_config_arguments(parser, defaults, skip=("model",))
    args = parser.parse_args(argv)
    config = training.config_from_args(defaults, args)
    workdir = args.workdir or os.path.join("runs", recipe, config.dataset)
    training.configure_logging()

    def run():
        result = train_and_evaluate(config, workdir, recipe=recipe)
        print(f"Test accuracy: {result.test_accuracy:.4f}, F1: {result.test_f1:.4f} "
              f"({result.epochs_run} epochs, {result.training_seconds:.1f} s)")
        print(f"Model exported to: {result.export_path}")

    return training.run_with_exit_codes(run)
