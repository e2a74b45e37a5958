"""Text classification: the story the intent recipes tell.

    python -m kerasdl train rnn_intent                     # = python -m recipes.rnn_intent
    python -m kerasdl train transformer_intent --dataset sms_spam

Setup (seed) -> data (`kerasdl.data.load_text_dataset`, raw strings) -> adapt a
`TextVectorization` on the training texts -> model (`kerasdl.models`, strings in) ->
`model.fit` with validation data, kerasdl EarlyStopping, CSV + TensorBoard logs ->
test accuracy and F1 -> a new SavedModel version (`kerasdl.export.export_text_classifier`)
whose `serving_default(text)` returns `probabilities`, `class_id` and the class name
`label` (tf.string), with model card. The per-model recipes (`recipes/rnn_intent.py`,
`recipes/transformer_intent.py`) are only their difference from
`TextClassificationConfig`'s defaults.

Files written:
    <workdir>/training_log.csv  one row per epoch; <workdir>/tensorboard/
    <workdir>/learning_curves.png
    <output>/<recipe>/<N>/      the SavedModel, with assets.extra/model_card.json
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from kerasdl.training.recipe_main import recipe_main


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
    config: TextClassificationConfig, workdir: str, recipe: str | None = None
) -> TextRunResult:
    """Trains, evaluates (accuracy, F1) and exports a text classifier; see module doc.

    `recipe` names the run, its model and its export (default `<model>_intent`).
    """
    import keras
    import numpy as np
    import tensorflow as tf
    from sklearn.metrics import f1_score

    from kerasdl import training
    from kerasdl.data.text_classification import load_text_dataset
    from kerasdl.export import export_text_classifier, model_directory
    from kerasdl.models.text_classifier import (
        rnn_text_classifier,
        transformer_text_classifier,
    )
    from recipes import RECIPES

    recipe = recipe or f"{config.model}_intent"
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
        optimizer=_optimizer(
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
    run = training.fit_with_early_stopping(
        model,
        train,
        validation,
        epochs=config.epochs,
        patience=config.early_stopping_patience,
        workdir=workdir,
        verbose=config.verbose,
    )
    history, early_stopping, log_path = run.history, run.early_stopping, run.log_path
    training_seconds, epochs_run = run.seconds, run.epochs_run

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
            if early_stopping.best is None
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
        model_directory(
            config.output,
            recipe,
            data.name,
            RECIPES[recipe].dataset if recipe in RECIPES else None,
        ),
        class_names=data.class_names,
        model_card=card,
        verification_texts=list(texts[:64]),
        extra_assets={"learning_curves.png": curves} if curves else None,
    )
    return TextRunResult(
        export_path, test_accuracy, test_f1, epochs_run, training_seconds, card
    )


def _optimizer(
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


# Command line ------------------------------------------------------------------------


def _report(result: TextRunResult) -> None:
    print(
        f"Test accuracy: {result.test_accuracy:.4f}, F1: {result.test_f1:.4f} "
        f"({result.epochs_run} epochs, {result.training_seconds:.1f} s)"
    )
    print(f"Model exported to: {result.export_path}")


# main(defaults, argv=None, *, recipe, prog=None) -> exit status; see recipe_main.
main = recipe_main(train_and_evaluate, _report, skip=("model",))
