"""Image classification: the story every CNN recipe tells.

    python -m kerasdl train lenet --dataset digits       # same as: python -m recipes.lenet

Setup (seed, strategy) -> data (`kerasdl.data`) -> model (`kerasdl.models`) -> train
(`model.fit` with validation data, early stopping, resumable checkpoints, TensorBoard
and CSV logs) -> evaluate on the test split -> export a new SavedModel version with a
model card. The per-model recipes (`recipes/lenet.py`, `recipes/resnet18.py`, ...) are
only their difference from `ImageClassificationConfig`'s defaults.

Files written:
    <workdir>/checkpoints/      resumable epoch-end checkpoints (see ResumableCheckpoint)
    <workdir>/training_log.csv  one row per epoch; <workdir>/tensorboard/
    <workdir>/learning_curves.png
    <output>/<recipe>/<N>/      the SavedModel, with assets.extra/model_card.json
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field

from kerasdl.training.recipe_main import recipe_main

CHOICES_NORMALIZATION = ("default", "none", "batch", "layer", "instance", "group")


@dataclass
class ImageClassificationConfig:
    """Every hyperparameter of an image-classification run."""

    model: str = "lenet"
    dataset: str = field(default="digits", metadata={"help": "kerasdl.data name"})
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = field(
        default="adam", metadata={"choices": ("adam", "adamw", "sgd")}
    )
    learning_rate: float = 1e-3
    lr_schedule: str = field(
        default="cosine", metadata={"choices": ("constant", "cosine")}
    )
    momentum: float = 0.9  # SGD only.
    weight_decay: float = 0.0  # L2 on conv/dense kernels (kerasdl.regularizers.L2).
    dropout: float | None = None  # None: the model family's default.
    normalization: str = field(
        default="default",
        metadata={
            "choices": CHOICES_NORMALIZATION,
            "help": "'default' keeps the family's own",
        },
    )
    model_options: dict = field(default_factory=dict)  # Family-specific builder kwargs.
    augment: bool = False
    early_stopping_patience: int = 5  # Epochs without val_loss improvement.
    seed: int = 0
    deterministic: bool = field(
        default=False, metadata={"help": "deterministic ops (exact resume)"}
    )
    strategy: str = field(
        default="auto",
        metadata={"choices": ("auto", "default", "mirrored", "multiworker")},
    )
    sync_batchnorm: bool = False  # Batch statistics over all replicas.
    mixed_precision: bool = False  # mixed_float16 (GPU); float32 outputs.
    jit_compile: bool = False  # XLA; on CPU it mostly costs compile time.
    steps_per_execution: int = 1
    data_dir: str | None = None  # tensorflow-datasets directory.
    download: bool = False  # Download a missing tensorflow-datasets set.
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
class RunResult:
    export_path: str | None
    test_accuracy: float
    test_loss: float
    epochs_run: int
    training_seconds: float
    model_card: dict


def train_and_evaluate(
    config: ImageClassificationConfig, workdir: str, recipe: str | None = None
) -> RunResult:
    """Trains `config.model` on `config.dataset`, evaluates, exports; see module doc."""
    import keras

    import kerasdl.data
    import kerasdl.models
    from kerasdl import training
    from kerasdl.callbacks.early_stopping import EarlyStopping
    from kerasdl.callbacks.resumable_checkpoint import ResumableCheckpoint
    from kerasdl.callbacks.terminate_on_non_finite_loss import TerminateOnNonFiniteLoss
    from kerasdl.export import export_saved_model, model_directory
    from recipes import RECIPES

    recipe = recipe or config.model
    workdir = str(workdir)

    # Setup ------------------------------------------------------------------------
    try:  # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs ops.
        strategy = training.get_strategy(config.strategy)
    except ValueError as error:
        raise training.UsageError(error) from None
    training.set_seed(config.seed, config.deterministic)
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if config.mixed_precision else "float32"
    )
    chief = training.is_chief(strategy)

    # Data: raw images; the model does its own rescaling -------------------------------
    try:
        data = kerasdl.data.load_image_dataset(
            config.dataset,
            batch_size=config.batch_size,
            data_dir=config.data_dir,
            seed=config.seed,
            limit=config.limit,
            augment=config.augment,
            download=config.download,
        )
    except (ValueError, KeyError) as error:
        raise training.UsageError(error) from None

    # Model ------------------------------------------------------------------------
    def build_model():
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
            raise training.UsageError(error) from None

    with strategy.scope():
        model = build_model()
        if config.sync_batchnorm:
            model = training.synchronize_batch_norm(model)
        model.compile(
            optimizer=_optimizer(
                config,
                steps_per_epoch=max(
                    1, -(-data.num_examples["train"] // config.batch_size)
                ),
            ),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=config.jit_compile,
            steps_per_execution=config.steps_per_execution,
        )

    # Train: resume from the last good checkpoint if a previous run was killed --------
    early_stopping = EarlyStopping(
        monitor="val_loss",
        patience=config.early_stopping_patience,
        restore_best_weights=True,
        verbose=1,
    )
    checkpoint = ResumableCheckpoint(
        os.path.join(workdir, "checkpoints"),
        metadata={"recipe": recipe, "model": config.model, "dataset": config.dataset},
        track_callbacks=[early_stopping],
        save=chief,
    )
    initial_epoch = checkpoint.restore(model)
    if initial_epoch:
        print(f"Resuming {recipe} from {workdir} after epoch {initial_epoch}.")
    # One endless stream, so epoch k is always the k-th pass over the shuffled data.
    train_stream, steps_per_epoch = training.resumable_stream(data.train, initial_epoch)
    log_path = os.path.join(workdir, "training_log.csv")
    callbacks = [TerminateOnNonFiniteLoss(), early_stopping]
    if chief:
        os.makedirs(workdir, exist_ok=True)
        callbacks.append(keras.callbacks.CSVLogger(log_path, append=initial_epoch > 0))
        callbacks += training.tensorboard_callbacks(
            os.path.join(workdir, "tensorboard")
        )
    callbacks.append(checkpoint)  # Last: it saves the state the others just updated.

    start = time.perf_counter()
    history = model.fit(
        train_stream,
        steps_per_epoch=steps_per_epoch,
        validation_data=data.validation,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        shuffle=False,  # The tf.data pipeline shuffles each epoch.
        verbose=training.fit_verbose(config.verbose),
    )
    training_seconds = time.perf_counter() - start
    epochs_run = initial_epoch + len(history.epoch)

    # Evaluate ---------------------------------------------------------------------
    test_loss, test_accuracy = model.evaluate(data.test, verbose=0)
    curves = None
    if chief:
        curves = training.plot_learning_curves(
            training.read_history(log_path),
            os.path.join(workdir, "learning_curves.png"),
            title=f"{recipe} on {config.dataset}",
        )

    # Export: a new numbered SavedModel version with its model card ----------------------
    card = training.build_model_card(
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
            "test_accuracy": float(test_accuracy),
            "test_loss": float(test_loss),
            **{f"final_{k}": float(v[-1]) for k, v in history.history.items()},
        },
        training={
            "epochs_run": epochs_run,
            "epochs_requested": config.epochs,
            "resumed_from_epoch": initial_epoch,
            "early_stopped": epochs_run < config.epochs,
            "best_epoch": None
            if early_stopping.best is None
            else int(early_stopping.best_epoch) + 1,
            "training_seconds": round(training_seconds, 2),
            "strategy": training.describe_strategy(strategy),
            "workdir": os.path.abspath(workdir),
        },
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
    export_path = None
    if chief:
        export_model = model
        if strategy.num_replicas_in_sync > 1 or config.sync_batchnorm:
            export_model = build_model()  # Plain variables, outside the strategy.
            export_model.set_weights(model.get_weights())
        images, _ = next(iter(data.test))
        result = export_saved_model(
            export_model,
            model_directory(
                config.output,
                recipe,
                config.dataset,
                RECIPES[recipe].dataset if recipe in RECIPES else None,
            ),
            input_shape=data.input_shape,
            input_dtype=data.input_dtype,
            model_card=card,
            verification_images=images.numpy()[:64],
            extra_assets={"learning_curves.png": curves} if curves else None,
        )
        export_path = result.path
    return RunResult(
        export_path,
        float(test_accuracy),
        float(test_loss),
        epochs_run,
        training_seconds,
        card,
    )


def _optimizer(config: ImageClassificationConfig, steps_per_epoch: int):
    import keras

    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs * steps_per_epoch
        )
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=config.momentum)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate)
    return keras.optimizers.Adam(learning_rate)


# Command line ------------------------------------------------------------------------


def _report(result: RunResult) -> None:
    print(
        f"Test accuracy: {result.test_accuracy:.4f} (loss {result.test_loss:.4f}, "
        f"{result.epochs_run} epochs, {result.training_seconds:.1f} s)"
    )
    if result.export_path:
        print(f"Model exported to: {result.export_path}")


# main(defaults, argv=None, *, recipe, prog=None) -> exit status; see recipe_main.
main = recipe_main(
    train_and_evaluate,
    _report,
    workdir_help="checkpoints and logs; rerun with the same workdir to resume",
)
