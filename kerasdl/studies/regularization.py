"""Regularization study: one small CNN, five ways to fight overfitting.

    python -m kerasdl.studies.regularization                  # about 1 minute on 2 CPU cores
    python -m kerasdl.studies.regularization --epochs 5 --output /tmp/study

The data are scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes,
shipped with scikit-learn, no download), split once, stratified and seeded, into
train / validation / test. Only a small part of the training split is used for
training, so that a CNN with ~40k parameters can memorise it: overfitting shows
as training accuracy at 100% while validation loss climbs back up.

The same network is then trained five times from the same initial weights:

    baseline        no regularization
    l2              kerasdl.regularizers.L2 on every kernel (l2 = λ/2 of (λ/2)·‖w‖²)
    dropout         kerasdl.layers.Dropout after the convolutions and the dense layer
    batch_norm      kerasdl.layers.BatchNormalization after every convolution / dense
    early_stopping  the baseline, with kerasdl.callbacks.EarlyStopping on val_loss
                    and restore_best_weights=True

Each final model is evaluated in inference mode on train, validation and test.
Losses are the cross-entropy alone (the L2 penalty is left out, so the variants
compare). The generalization gap is train minus validation accuracy, and
validation minus train cross-entropy.

Files written to --output (default runs/regularization_study/):
    results.csv          one row per variant: the printed table
    results.json         the resolved config, the table and every epoch's history
    learning_curves.png  cross-entropy and accuracy per epoch; one colour per
                         variant, train dashed, validation solid
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import time
from dataclasses import dataclass

VARIANTS = ("baseline", "l2", "dropout", "batch_norm", "early_stopping")


@dataclass
class RegularizationStudyConfig:
    """Every hyperparameter of the study."""

    seed: int = 0
    # Data: fractions of the 1,797 digits, then a small training subset.
    validation_fraction: float = 0.25
    test_fraction: float = 0.25
    train_size: int = 200
    # Model.
    conv_filters: tuple[int, ...] = (16, 32)
    dense_units: int = 64
    # Training.
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 2e-3
    # Regularizers, one per variant.
    l2: float = 3e-3
    conv_dropout_rate: float = 0.25
    dense_dropout_rate: float = 0.5
    early_stopping_patience: int = 10
    # With 7 steps an epoch, Keras' default momentum of 0.99 leaves the moving
    # statistics far from the batch ones after 280 steps: inference collapses.
    batch_norm_momentum: float = 0.9
    variants: tuple[str, ...] = VARIANTS
    verbose: int = 0


# Data ----------------------------------------------------------------------------


def load_data(config: RegularizationStudyConfig) -> dict:
    """Returns {"train" | "validation" | "test": (images, labels)}.

    Images are (n, 8, 8, 1) float32 in [0, 1]; labels (n,) int32.
    """
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]  # (1797, 8, 8, 1)
    labels = digits.target.astype("int32")
    indices = np.arange(len(labels))
    rest, test = train_test_split(
        indices,
        test_size=config.test_fraction,
        stratify=labels,
        random_state=config.seed,
    )
    train, validation = train_test_split(
        rest,
        test_size=config.validation_fraction / (1 - config.test_fraction),
        stratify=labels[rest],
        random_state=config.seed,
    )
    if config.train_size < len(train):
        train, _ = train_test_split(
            train,
            train_size=config.train_size,
            stratify=labels[train],
            random_state=config.seed,
        )
    return {
        name: (images[part], labels[part])
        for name, part in (("train", train), ("validation", validation), ("test", test))
    }


# Model ---------------------------------------------------------------------------


def build_model(config: RegularizationStudyConfig, variant: str):
    """The study's CNN, with the regularizer that `variant` names.

    conv 3x3 -> conv 3x3 -> max-pool -> dense -> softmax logits; each block is
    conv/dense, then batch norm, then ReLU, then dropout, where the variant
    asks for them.
    """
    import keras

    import kerasdl

    kernel_regularizer = kerasdl.regularizers.L2(config.l2) if variant == "l2" else None
    batch_norm = variant == "batch_norm"
    dropout = variant == "dropout"

    def block(x, layer, dropout_rate, name):
        x = layer(x)
        if batch_norm:
            x = kerasdl.layers.BatchNormalization(
                momentum=config.batch_norm_momentum, name=f"{name}_bn"
            )(x)
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
        if dropout:
            x = kerasdl.layers.Dropout(dropout_rate, name=f"{name}_dropout")(x)
        return x

    inputs = keras.Input((8, 8, 1), name="image")
    x = inputs
    for i, filters in enumerate(config.conv_filters):
        conv = keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=not batch_norm,
            kernel_regularizer=kernel_regularizer,
            name=f"conv{i + 1}",
        )
        x = block(x, conv, config.conv_dropout_rate, f"conv{i + 1}")  # (b, 8, 8, f)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)  # (batch, 4, 4, filters)
    x = keras.layers.Flatten(name="flatten")(x)
    dense = keras.layers.Dense(
        config.dense_units,
        use_bias=not batch_norm,
        kernel_regularizer=kernel_regularizer,
        name="dense",
    )
    x = block(x, dense, config.dense_dropout_rate, "dense")  # (batch, units)
    logits = keras.layers.Dense(
        10, kernel_regularizer=kernel_regularizer, name="logits"
    )(x)
    return keras.Model(inputs, logits, name=f"digits_cnn_{variant}")


# Train and evaluate --------------------------------------------------------------


def train_variant(config: RegularizationStudyConfig, variant: str, data: dict) -> dict:
    """Trains one variant from the study's seed; returns its row and history."""
    import keras

    import kerasdl

    keras.utils.set_random_seed(config.seed)  # same initial weights for every variant
    model = build_model(config, variant)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            # The loss without the L2 penalty, so that variants compare.
            keras.metrics.SparseCategoricalCrossentropy(
                from_logits=True, name="cross_entropy"
            ),
        ],
    )
    callbacks = []
    early_stopping = None
    if variant == "early_stopping":
        early_stopping = kerasdl.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=config.early_stopping_patience,
            restore_best_weights=True,
            verbose=config.verbose,
        )
        callbacks.append(early_stopping)

    start = time.perf_counter()
    history = model.fit(
        *data["train"],
        validation_data=data["validation"],
        epochs=config.epochs,
        batch_size=config.batch_size,
        callbacks=callbacks,
        verbose=config.verbose,
    )
    seconds = time.perf_counter() - start

    best_epoch = None  # 1-based epoch whose weights early stopping restored
    if early_stopping is not None and early_stopping.best is not None:
        best_epoch = early_stopping.best_epoch + 1

    # Final models, inference mode (no dropout, batch norm's moving statistics).
    scores = {
        split: model.evaluate(*data[split], batch_size=256, verbose=0, return_dict=True)
        for split in ("train", "validation", "test")
    }
    row = {
        "variant": variant,
        "epochs_run": len(history.history["loss"]),
        "best_epoch": best_epoch,
        "train_accuracy": scores["train"]["accuracy"],
        "val_accuracy": scores["validation"]["accuracy"],
        "accuracy_gap": scores["train"]["accuracy"] - scores["validation"]["accuracy"],
        "train_loss": scores["train"]["cross_entropy"],
        "val_loss": scores["validation"]["cross_entropy"],
        "loss_gap": scores["validation"]["cross_entropy"]
        - scores["train"]["cross_entropy"],
        "test_accuracy": scores["test"]["accuracy"],
        "seconds": seconds,
    }
    curves = {
        key: [float(v) for v in history.history[key]]
        for key in ("cross_entropy", "val_cross_entropy", "accuracy", "val_accuracy")
    }
    return {"row": row, "history": curves}


def train_and_evaluate(config: RegularizationStudyConfig, workdir: str) -> list[dict]:
    """Runs every variant, prints the table, writes CSV, JSON and PNG to `workdir`."""
    unknown = set(config.variants) - set(VARIANTS)
    if unknown:
        raise ValueError(
            f"Unknown variants {sorted(unknown)}; expected some of {VARIANTS}"
        )
    os.makedirs(workdir, exist_ok=True)
    data = load_data(config)
    sizes = ", ".join(f"{name} {len(labels)}" for name, (_, labels) in data.items())
    print(f"Digits 8x8, {sizes} examples; {config.epochs} epochs per variant.")

    results = {}
    for variant in config.variants:
        results[variant] = train_variant(config, variant, data)
        row = results[variant]["row"]
        print(
            f"  {variant:<15} {row['epochs_run']:>3} epochs in {row['seconds']:5.1f}s"
        )
    rows = [result["row"] for result in results.values()]

    table = format_table(rows)
    print(table)
    with open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(
            {
                "config": dataclasses.asdict(config),
                "results": rows,
                "history": {v: r["history"] for v, r in results.items()},
            },
            f,
            indent=2,
        )
    plot_learning_curves(results, os.path.join(workdir, "learning_curves.png"))
    print(f"Wrote results.csv, results.json and learning_curves.png to {workdir}")
    return rows


# Report --------------------------------------------------------------------------


def format_table(rows: list[dict]) -> str:
    """The results as a fixed-width text table."""
    header = (
        f"{'variant':<15} {'epochs':>6} {'train acc':>9} {'val acc':>8} "
        f"{'gap':>6} {'train loss':>10} {'val loss':>9} {'gap':>6} "
        f"{'test acc':>8}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        epochs = str(row["epochs_run"])
        if row["best_epoch"] is not None:
            epochs = f"{row['best_epoch']}/{epochs}"  # restored epoch / run
        lines.append(
            f"{row['variant']:<15} {epochs:>6} {row['train_accuracy']:>9.3f} "
            f"{row['val_accuracy']:>8.3f} {row['accuracy_gap']:>6.3f} "
            f"{row['train_loss']:>10.3f} {row['val_loss']:>9.3f} "
            f"{row['loss_gap']:>6.3f} {row['test_accuracy']:>8.3f}"
        )
    return "\n".join(lines)


def plot_learning_curves(results: dict, path: str) -> None:
    """One subplot per metric, one colour per variant; train dashed, val solid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = (("cross_entropy", "cross-entropy (log scale)"), ("accuracy", "accuracy"))
    figure, axes = plt.subplots(1, len(metrics), figsize=(13, 5))
    for ax, (metric, title) in zip(axes, metrics):
        for i, (variant, result) in enumerate(results.items()):
            color = f"C{i}"
            history = result["history"]
            epochs = range(1, len(history[metric]) + 1)
            # Early stopping is the baseline cut short: a wide halo under it.
            if variant == "early_stopping":
                line = {"color": color, "lw": 4, "alpha": 0.4, "zorder": 1}
            else:
                line = {"color": color, "lw": 1.5, "alpha": 0.9, "zorder": 2}
            ax.plot(epochs, history[metric], "--", **line)
            ax.plot(epochs, history[f"val_{metric}"], "-", label=variant, **line)
            best_epoch = result["row"]["best_epoch"]
            if best_epoch is not None:
                ax.plot(
                    best_epoch,
                    history[f"val_{metric}"][best_epoch - 1],
                    "o",
                    color=color,
                )
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if metric == "cross_entropy":
            ax.set_yscale("log")
    axes[-1].set_ylim(0.7, 1.005)
    # Two legends: colours name the variants, line styles the split.
    axes[0].legend(title="variant (validation)", loc="lower left", fontsize=9)
    styles = [
        plt.Line2D([], [], color="gray", ls="--", label="train"),
        plt.Line2D([], [], color="gray", ls="-", label="validation"),
        plt.Line2D(
            [], [], color="gray", ls="", marker="o", label="restored best epoch"
        ),
    ]
    axes[-1].legend(handles=styles, loc="lower right", fontsize=9)
    figure.suptitle(
        "Digits 8x8 CNN: train (dashed) vs validation (solid); train curves are "
        "measured while training, dropout active"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# Main ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    defaults = RegularizationStudyConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--train-size", type=int, default=defaults.train_size)
    parser.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=list(defaults.variants)
    )
    parser.add_argument(
        "--output", default=os.path.join("runs", "regularization_study")
    )
    parser.add_argument("--verbose", type=int, default=defaults.verbose)
    args = parser.parse_args(argv)
    config = dataclasses.replace(
        defaults,
        epochs=args.epochs,
        seed=args.seed,
        train_size=args.train_size,
        variants=tuple(args.variants),
        verbose=args.verbose,
    )
    train_and_evaluate(config, args.output)


if __name__ == "__main__":
    main()
