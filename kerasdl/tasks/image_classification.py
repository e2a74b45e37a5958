"""Image classification as library steps: data, model, fit, evaluate, export.

    kerasdl train lenet --dataset digits     # = python -m kerasdl.recipes.lenet

`run(config, workdir)` is the whole pipeline; each step is also callable on its own,
e.g. in a notebook:

```python
from kerasdl.tasks import image_classification as task

config = task.ImageClassificationConfig(model="lenet", epochs=3)
data = task.load_data(config)
model = task.build_model(config, data)
task.compile_model(model, config, data)
model.fit(data.train, validation_data=data.validation, epochs=config.epochs)
metrics = task.evaluate(model, data)          # {"test_accuracy": ..., "test_loss": ...}
```

Files written by `run`:
    <workdir>/run.json          the resolved config and the run's phase
    <workdir>/checkpoints/      epoch-end checkpoints, final.npz (see kerasdl.tasks.fit)
    <workdir>/training_log.csv  one row per epoch; <workdir>/tensorboard/
    <workdir>/learning_curves.png
    <output>/<recipe>/<N>/      the SavedModel, with assets.extra/model_card.json
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from kerasdl.tasks import config_fields as fields
from kerasdl.tasks.exit_codes import UsageError

DESCRIPTION = "Train, evaluate and export the {recipe} image classifier."
FIXED_FIELDS = ()
CHOICES_NORMALIZATION = ("default", "none", "batch", "layer", "instance", "group")


@dataclass
class ImageClassificationConfig:
    """Every hyperparameter of an image-classification run."""

    model: str = fields.model("lenet", "kerasdl.models:MODELS")
    dataset: str = fields.dataset(
        "digits", "kerasdl.data.image_dataset:IMAGE_DATASETS", "kerasdl.data name"
    )
    epochs: int = fields.epochs(30)
    batch_size: int = fields.batch_size(64)
    optimizer: str = field(
        default="adam", metadata={"choices": ("adam", "adamw", "sgd")}
    )
    learning_rate: float = fields.learning_rate(1e-3)
    lr_schedule: str = fields.lr_schedule("cosine")
    momentum: float = fields.fraction(0.9, "SGD only")
    weight_decay: float = field(
        default=0.0,
        metadata={"help": "L2 on conv/dense kernels", "min": 0, "max": 1},
    )
    dropout: float | None = fields.fraction(None, "None: the family's default")
    normalization: str = field(
        default="default",
        metadata={
            "choices": CHOICES_NORMALIZATION,
            "help": "'default' keeps the family's own",
        },
    )
    model_options: dict = field(default_factory=dict)  # Family-specific builder kwargs.
    augment: bool = False
    early_stopping_patience: int = fields.patience(5)
    seed: int = fields.seed(0)
    deterministic: bool = field(
        default=False, metadata={"help": "deterministic ops (exact resume)"}
    )
    strategy: str = field(
        default="auto",
        metadata={"choices": ("auto", "default", "mirrored", "multiworker")},
    )
    sync_batchnorm: bool = False  # Batch statistics over all replicas.
    mixed_precision: bool = False  # mixed_float16 (GPU); float32 outputs.
    jit_compile: bool = field(
        default=False,
        metadata={"help": "XLA (on CPU mostly compile time)", "resume": True},
    )
    steps_per_execution: int = fields.steps_per_execution()
    data_dir: str | None = fields.data_dir()
    download: bool = fields.download()
    limit: int | None = fields.limit()
    output: str = fields.output()
    verbose: str = fields.verbose()


Config = ImageClassificationConfig


@dataclass
class RunResult:
    export_path: str | None
    test_accuracy: float
    test_loss: float
    epochs_run: int
    training_seconds: float
    model_card: dict


# Steps -------------------------------------------------------------------------------


def load_data(config: ImageClassificationConfig):
    """The `kerasdl.data.ImageDataset` of `config.dataset`, raw images."""
    import kerasdl.data

    try:
        return kerasdl.data.load_image_dataset(
            config.dataset,
            batch_size=config.batch_size,
            data_dir=config.data_dir,
            seed=config.seed,
            limit=config.limit,
            augment=config.augment,
            download=config.download,
        )
    except (ValueError, KeyError) as error:
        raise UsageError(error) from None


def check_data(data) -> None:
    """Refuses validation or test images with NaN or infinity (`steps.DataError`).

    The training split is not read here: iterating its seeded shuffle would move
    the order of every epoch; a non-finite training image shows as a diverged loss.
    """
    from kerasdl.tasks.steps import check_finite

    for split in ("validation", "test"):
        check_finite(getattr(data, split), split)


def build_model(config: ImageClassificationConfig, data):
    """`config.model` from the model registry, sized for `data`, uncompiled."""
    import kerasdl.models

    kwargs = dict(
        config.model_options, rescale=data.rescale, input_dtype=data.input_dtype
    )
    if config.normalization != "default":
        kwargs["normalization"] = (
            None if config.normalization == "none" else config.normalization
        )
    if config.dropout is not None:
        kwargs["dropout"] = config.dropout
    if config.weight_decay:
        kwargs["weight_decay"] = config.weight_decay
    try:
        return kerasdl.models.get_model(
            config.model, data.input_shape, data.num_classes, **kwargs
        )
    except (ValueError, KeyError, TypeError) as error:
        raise UsageError(
            f"cannot build {config.model!r} with --model-options "
            f"{json.dumps(config.model_options)} (and --normalization, --dropout, "
            f"--weight-decay): {error}"
        ) from None


def compile_model(model, config: ImageClassificationConfig, data) -> None:
    """Compiles with the config's optimizer and schedule over `epochs` x batches."""
    from kerasdl.tasks.steps import optimizer

    steps_per_epoch = max(1, -(-data.num_examples["train"] // config.batch_size))
    model.compile(
        optimizer=optimizer(
            config.optimizer,
            config.learning_rate,
            schedule=config.lr_schedule,
            total_steps=config.epochs * steps_per_epoch,
            momentum=config.momentum,
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )


def evaluate(model, data) -> dict:
    """`{"test_loss", "test_accuracy"}` on `data.test`."""
    test_loss, test_accuracy = model.evaluate(data.test, verbose=0)
    return {"test_accuracy": float(test_accuracy), "test_loss": float(test_loss)}


def model_card(config, data, model, metrics, fit_result, *, recipe, strategy=None):
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
            "class_names": list(data.class_names),
            "input_shape": list(data.input_shape),
            "input_dtype": data.input_dtype,
        },
        metrics={
            **metrics,
            **steps.final_metrics(fit_result.history),
        },
        training=steps.training_summary(config, fit_result, strategy),
        parameter_count=model.count_params(),
        signature={
            "serving_default": {
                "inputs": {
                    "images": [None, *data.input_shape],
                    "dtype": data.input_dtype,
                },
                "outputs": {
                    "probabilities": [None, data.num_classes],
                    "class_id": [None],
                },
            }
        },
    )


def export(model, data, base_dir, *, card, extra_assets=None) -> str:
    """A new SavedModel version under `base_dir`; returns its path."""
    from kerasdl.export import export_saved_model

    images, _ = next(iter(data.test))
    result = export_saved_model(
        model,
        base_dir,
        input_shape=data.input_shape,
        input_dtype=data.input_dtype,
        model_card=card,
        verification_images=images.numpy()[:64],
        extra_assets=extra_assets,
        # float16 (--mixed-precision) rounds differently in the reloaded graph.
        atol=1e-5 if model.compute_dtype == "float32" else 1e-3,
    )
    return result.path


# The pipeline ------------------------------------------------------------------------


def run(
    config: ImageClassificationConfig,
    workdir,
    recipe: str | None = None,
    restart: bool = False,
) -> RunResult:
    """Trains `config.model` on `config.dataset`, evaluates, exports; resumable.

    A rerun in the same workdir resumes what an earlier run left: the epochs, or,
    when training had finished, only the evaluation and export. The run is complete
    when its export is published; see `kerasdl.tasks.fit` and `RunDirectory`.
    """
    import keras

    from kerasdl import training
    from kerasdl.export import model_directory
    from kerasdl.plots import plot_learning_curves
    from kerasdl.recipes import default_dataset
    from kerasdl.tasks import steps
    from kerasdl.tasks.fit import fit

    steps.check_config(config)
    recipe = recipe or config.model

    def strategy_or_usage_error():
        try:
            return training.get_strategy(config.strategy)
        except ValueError as error:
            raise UsageError(error) from None

    # MultiWorkerMirroredStrategy must exist before TensorFlow runs ops, and tells
    # this worker whether it is the chief; any other strategy is made after the
    # workdir checks, which then cost no device start-up.
    strategy = None
    if config.strategy == "multiworker":
        strategy = strategy_or_usage_error()
    chief = strategy is None or training.is_chief(strategy)
    base_dir = model_directory(
        config.output, recipe, config.dataset, default_dataset(recipe)
    )
    run_dir = steps.open_run(
        config, workdir, recipe=recipe, restart=restart, chief=chief
    )
    with run_dir:
        strategy = strategy or strategy_or_usage_error()
        if chief:
            steps.remove_stale_exports(base_dir)
        training.set_seed(config.seed, config.deterministic)
        keras.mixed_precision.set_global_policy(
            "mixed_float16" if config.mixed_precision else "float32"
        )
        data = load_data(config)
        check_data(data)

        def build():
            model = build_model(config, data)
            return (
                training.synchronize_batch_norm(model)
                if config.sync_batchnorm
                else model
            )

        with strategy.scope():
            model = build()
            compile_model(model, config, data)
        if chief:
            steps.check_space(run_dir, config.output, model)

        fitted = fit(
            model,
            data.train,
            data.validation,
            run_dir=run_dir,
            epochs=config.epochs,
            patience=config.early_stopping_patience,
            verbose=config.verbose,
            chief=chief,
        )
        metrics = evaluate(model, data)
        card = model_card(
            config, data, model, metrics, fitted, recipe=recipe, strategy=strategy
        )
        export_path = None
        if chief:
            curves = plot_learning_curves(
                fitted.history,
                run_dir.file("learning_curves.png"),
                title=f"{recipe} on {config.dataset}",
            )
            export_model = model
            if strategy.num_replicas_in_sync > 1 or config.sync_batchnorm:
                export_model = build_model(config, data)  # Plain variables.
                export_model.set_weights(model.get_weights())
            export_path = export(
                export_model,
                data,
                base_dir,
                card=card,
                extra_assets={"learning_curves.png": curves} if curves else None,
            )
            run_dir.mark_published(export_path)
    return RunResult(
        export_path,
        metrics["test_accuracy"],
        metrics["test_loss"],
        fitted.epochs_run,
        fitted.seconds,
        card,
    )


def report(result: RunResult) -> None:
    """Prints what `run` returned, for the command line."""
    print(
        f"Test accuracy: {result.test_accuracy:.4f} (loss {result.test_loss:.4f}, "
        f"{result.epochs_run} epochs, {result.training_seconds:.1f} s)"
    )
    if result.export_path:
        print(f"Model exported to: {result.export_path}")
