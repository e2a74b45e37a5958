"""Text classification as library steps: data, vectorizer, model, fit, evaluate, export.

    kerasdl train rnn_intent                       # = python -m kerasdl.recipes.rnn_intent
    kerasdl train transformer_intent --dataset sms_spam

Data (`kerasdl.data.load_text_dataset`, raw strings) -> a `TextVectorization`
adapted on the training texts -> model (`kerasdl.models`, strings in) -> fit
(`kerasdl.tasks.fit`: early stopping, resumable checkpoints, logs) -> test accuracy
and F1 -> a new SavedModel version (`kerasdl.export.export_text_classifier`) whose
`serving_default(text)` returns `probabilities`, `class_id` and the class name
`label` (tf.string), with model card. Each step is callable on its own:

```python
from kerasdl.tasks import text_classification as task

config = task.TextClassificationConfig(dataset="banking77", epochs=2)
data = task.load_data(config)
vectorizer = task.build_vectorizer(config, data)
model = task.build_model(config, data, vectorizer)
task.compile_model(model, config, data)
```

Files written by `run`: as `kerasdl.tasks.image_classification`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from kerasdl.tasks import config_fields as fields
from kerasdl.tasks.exit_codes import UsageError

DESCRIPTION = "Train, evaluate and export the {recipe} text classifier."
FIXED_FIELDS = ("model",)


@dataclass
class TextClassificationConfig:
    """Every hyperparameter of an intent (text classification) run."""

    model: str = field(default="rnn", metadata={"choices": ("rnn", "transformer")})
    dataset: str = fields.dataset(
        "banking77", "kerasdl.data.text_classification:TEXT_DATASETS"
    )
    epochs: int = fields.epochs(30)
    batch_size: int = fields.batch_size(64)
    learning_rate: float = fields.learning_rate(2e-3)
    lr_schedule: str = fields.lr_schedule("cosine")
    weight_decay: float = field(
        default=0.0,
        metadata={
            "help": "AdamW's decoupled weight decay (0: Adam)",
            "min": 0,
            "max": 1,
        },
    )
    max_tokens: int = fields.vocabulary_size(20_000, "vocabulary size cap")
    sequence_length: int = fields.positive(64, "tokens kept per text", 100_000)
    embedding_dim: int = fields.positive(128, maximum=100_000)
    units: int = fields.positive(128, "RNN units per direction", 100_000)
    num_layers: int = fields.positive(1, maximum=1_000)
    bidirectional: bool = False
    cell: str = field(default="gru", metadata={"choices": ("gru", "lstm")})
    hidden_dim: int = fields.positive(128, "Transformer width", 100_000)
    num_heads: int = fields.positive(4, maximum=1_000)
    intermediate_dim: int = fields.positive(256, maximum=1_000_000)
    dropout: float = fields.fraction(0.2)
    label_smoothing: float = fields.fraction(0.0)
    early_stopping_patience: int = fields.patience(5)
    seed: int = fields.seed(0)
    data_dir: str | None = fields.data_dir()
    download: bool = fields.download()
    limit: int | None = fields.limit()
    output: str = fields.output()
    verbose: str = fields.verbose()


Config = TextClassificationConfig


@dataclass
class TextRunResult:
    export_path: str | None
    test_accuracy: float
    test_f1: float
    epochs_run: int
    training_seconds: float
    model_card: dict


# Steps -------------------------------------------------------------------------------


def load_data(config: TextClassificationConfig):
    """The `kerasdl.data.TextDataset` of `config.dataset`: raw strings, int labels."""
    from kerasdl.data.text_classification import load_text_dataset

    try:
        return load_text_dataset(
            config.dataset,
            batch_size=config.batch_size,
            data_dir=config.data_dir,
            seed=config.seed,
            limit=config.limit,
            download=config.download,
        )
    except ValueError as error:
        raise UsageError(error) from None


def build_vectorizer(config: TextClassificationConfig, data):
    """A `TextVectorization` adapted on the training texts only."""
    import keras

    vectorizer = keras.layers.TextVectorization(
        max_tokens=config.max_tokens,
        output_sequence_length=config.sequence_length,
        name="text_vectorization",
    )
    vectorizer.adapt(data.train_texts.batch(1024))
    return vectorizer


def build_model(config: TextClassificationConfig, data, vectorizer, name=None):
    """The RNN or Transformer classifier over `vectorizer`, strings in."""
    from kerasdl.models.text_classifier import (
        rnn_text_classifier,
        transformer_text_classifier,
    )

    name = name or f"{config.model}_intent"
    try:
        if config.model == "rnn":
            return rnn_text_classifier(
                vectorizer,
                data.num_classes,
                embedding_dim=config.embedding_dim,
                units=config.units,
                num_layers=config.num_layers,
                bidirectional=config.bidirectional,
                cell=config.cell,
                dropout=config.dropout,
                name=name,
            )
        return transformer_text_classifier(
            vectorizer,
            data.num_classes,
            hidden_dim=config.hidden_dim,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            intermediate_dim=config.intermediate_dim,
            dropout=config.dropout,
            name=name,
        )
    except ValueError as error:
        raise UsageError(error) from None


def compile_model(model, config: TextClassificationConfig, data) -> None:
    """Adam (AdamW with `weight_decay`), cosine over `epochs`, (smoothed) CE."""
    import keras

    from kerasdl.tasks.steps import optimizer

    steps_per_epoch = max(1, -(-data.num_examples["train"] // config.batch_size))
    model.compile(
        optimizer=optimizer(
            "adamw" if config.weight_decay else "adam",
            config.learning_rate,
            schedule=config.lr_schedule,
            total_steps=config.epochs * steps_per_epoch,
            weight_decay=config.weight_decay,
        ),
        loss=keras.losses.CategoricalCrossentropy(
            label_smoothing=config.label_smoothing
        )
        if config.label_smoothing
        else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def training_splits(config: TextClassificationConfig, data):
    """`(train, validation)` as `fit` takes them (one-hot labels when smoothing)."""
    import tensorflow as tf

    train, validation = data.train, data.validation
    if config.label_smoothing:

        def one_hot(texts, labels):
            return texts, tf.one_hot(labels, data.num_classes)

        train, validation = train.map(one_hot), validation.map(one_hot)
    return train, validation


def evaluate(model, data) -> dict:
    """Test accuracy and F1 (binary: of the positive class; else macro)."""
    import numpy as np
    from sklearn.metrics import f1_score

    labels = np.concatenate([y.numpy() for _, y in data.test])
    predicted = np.argmax(model.predict(data.test, verbose=0), axis=-1)
    average = "binary" if data.num_classes == 2 else "macro"
    return {
        "test_accuracy": float(np.mean(predicted == labels)),
        f"test_f1_{average}": float(f1_score(labels, predicted, average=average)),
    }


def model_card(config, data, model, vectorizer, metrics, fit_result, *, recipe):
    """The model card dict written beside the export."""
    from kerasdl.export.model_card import build_model_card
    from kerasdl.tasks import steps

    return build_model_card(
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
            **metrics,
            **steps.final_metrics(fit_result.history),
        },
        training=steps.training_summary(config, fit_result),
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


def export(model, data, base_dir, *, card, extra_assets=None) -> str:
    """A new SavedModel version (strings in) under `base_dir`; returns its path."""
    import numpy as np

    from kerasdl.export import export_text_classifier

    texts = np.concatenate([x.numpy() for x, _ in data.test.take(1)])
    return export_text_classifier(
        model,
        base_dir,
        class_names=data.class_names,
        model_card=card,
        verification_texts=list(texts[:64]),
        extra_assets=extra_assets,
    )


# The pipeline ------------------------------------------------------------------------


def run(
    config: TextClassificationConfig,
    workdir,
    recipe: str | None = None,
    restart: bool = False,
) -> TextRunResult:
    """Trains, evaluates (accuracy, F1) and exports a text classifier; resumable.

    `recipe` names the run, its model and its export (default `<model>_intent`).
    """
    from kerasdl import training
    from kerasdl.export import model_directory
    from kerasdl.plots import plot_learning_curves
    from kerasdl.recipes import default_dataset
    from kerasdl.tasks import steps
    from kerasdl.tasks.fit import fit

    steps.check_config(config)
    recipe = recipe or f"{config.model}_intent"
    base_dir = model_directory(
        config.output, recipe, config.dataset, default_dataset(recipe)
    )
    with steps.open_run(config, workdir, recipe=recipe, restart=restart) as run_dir:
        steps.remove_stale_exports(base_dir)
        training.set_seed(config.seed)
        data = load_data(config)
        vectorizer = build_vectorizer(config, data)
        model = build_model(config, data, vectorizer, name=recipe)
        compile_model(model, config, data)
        steps.check_space(run_dir, config.output, model)
        train, validation = training_splits(config, data)
        fitted = fit(
            model,
            train,
            validation,
            run_dir=run_dir,
            epochs=config.epochs,
            patience=config.early_stopping_patience,
            verbose=config.verbose,
        )
        metrics = evaluate(model, data)
        curves = plot_learning_curves(
            fitted.history,
            run_dir.file("learning_curves.png"),
            title=f"{recipe} on {data.name}",
        )
        card = model_card(
            config, data, model, vectorizer, metrics, fitted, recipe=recipe
        )
        export_path = export(
            model,
            data,
            base_dir,
            card=card,
            extra_assets={"learning_curves.png": curves} if curves else None,
        )
        run_dir.mark_published(export_path)
    f1 = next(v for k, v in metrics.items() if k.startswith("test_f1"))
    return TextRunResult(
        export_path,
        metrics["test_accuracy"],
        f1,
        fitted.epochs_run,
        fitted.seconds,
        card,
    )


def report(result: TextRunResult) -> None:
    """Prints what `run` returned, for the command line."""
    print(
        f"Test accuracy: {result.test_accuracy:.4f}, F1: {result.test_f1:.4f} "
        f"({result.epochs_run} epochs, {result.training_seconds:.1f} s)"
    )
    print(f"Model exported to: {result.export_path}")
