"""Regularization study: one small CNN, every way the articles list to fight overfitting.

    kerasdl study regularization           # 3 CPU-minutes (23 min wall at load 15 on 2 cores)
    kerasdl study regularization --quick   # seconds; for tests
    python -m kerasdl.studies.regularization --output /tmp/study   # the same command

The data are scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes, no
download), split once, stratified and seeded, into a training pool (898), validation
(449) and test (450). The CNN (~40k parameters) is trained on a small (200) and a
larger (600) stratified subset of the pool, so that overfitting (training accuracy
at 100% while validation loss climbs back up) can be compared between the two.

Variants, each trained from the same seed (same initial weights) on each size:

    baseline        no regularization
    l2              kerasdl.regularizers.L2 on every kernel (penalty l2 * sum w**2)
    l1              kerasdl.regularizers.L1 on every kernel (penalty l1 * sum |w|)
    dropout         kerasdl.layers.Dropout after the convolutions and the dense layer
    batch_norm      kerasdl.layers.BatchNormalization after every convolution / dense
    early_stopping  the baseline with kerasdl.callbacks.EarlyStopping on val_loss
                    (restore_best_weights=True)
    augmentation    the baseline trained on randomly translated images
                    (kerasdl.data.image_dataset.augmentation_layers("digits"))
    smaller         the baseline with half the filters and a quarter of the units
and two that combine models:
    ensemble            kerasdl.models.ensemble (average of the probabilities) of 5
                        baselines trained from 5 seeds (its members; member 0 is
                        the baseline)
    cross_validated_l2  the L2 strength chosen by 3-fold cross-validation on the
                        training subset (kerasdl.training.cross_validate) over
                        0, 3e-3 and 3e-2, then trained on the whole subset

Each final model is evaluated in inference mode on train, validation and test.
Losses are the cross-entropy alone (L1/L2 penalties left out, so variants compare).
The generalization gap the verdicts use is test minus train cross-entropy (the
validation set picked early stopping's epoch, so it is not independent). The
seed-to-seed spread of the 5 ensemble members' test accuracy is the noise level
below which a difference in test accuracy counts as none.

Files written to --output (default runs/studies/regularization/): results.csv
(tidy: one row per training size, variant and metric), history.json (every
epoch's curves), learning_curves.png, generalization.png, weights.png,
cross_validation.png and summary.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from kerasdl.studies.framework import (
    Claim,
    Report,
    Results,
    Verdict,
    format_number,
    verdict,
)

DESCRIPTION = (
    "L1, L2, dropout, batch norm, augmentation, early stopping, a smaller model, "
    "an ensemble and cross-validated L2 on a digits CNN, with 200 and 600 examples"
)

VARIANTS = (
    "baseline",
    "l2",
    "l1",
    "dropout",
    "batch_norm",
    "early_stopping",
    "augmentation",
    "smaller",
)
# Variants made of other models: the ensemble of baselines, and L2 chosen by CV.
COMBINED = ("ensemble", "cross_validated_l2")


@dataclass
class RegularizationStudyConfig:
    """Every hyperparameter of the study."""

    seed: int = 0
    # Data: fractions of the 1,797 digits, then stratified training subsets.
    validation_fraction: float = 0.25
    test_fraction: float = 0.25
    train_sizes: tuple[int, ...] = (200, 600)
    # Model.
    conv_filters: tuple[int, ...] = (16, 32)
    dense_units: int = 64
    smaller_conv_filters: tuple[int, ...] = (8, 16)
    smaller_dense_units: int = 16
    # Training.
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 2e-3
    # Regularizers, one per variant.
    l2: float = 3e-3
    l1: float = 1e-4
    conv_dropout_rate: float = 0.25
    dense_dropout_rate: float = 0.5
    early_stopping_patience: int = 10
    # With 7 steps an epoch, Keras' default momentum of 0.99 leaves the moving
    # statistics far from the batch ones after 280 steps: inference collapses.
    batch_norm_momentum: float = 0.9
    ensemble_size: int = 5
    cv_folds: int = 3
    cv_l2_grid: tuple[float, ...] = (0.0, 3e-3, 3e-2)
    # |w| below this counts as a zero weight.
    near_zero: float = 1e-3
    variants: tuple[str, ...] = VARIANTS
    verbose: int = 0


# `--quick`: one small size, 2 epochs, 2 members, 2 folds of one strength.
QUICK = {
    "train_sizes": (80,),
    "epochs": 2,
    "ensemble_size": 2,
    "cv_folds": 2,
    "cv_l2_grid": (3e-3,),
}

CLAIMS = [
    Claim(
        "overfit_small_data",
        "001_2665fda0b36d1909.txt",
        "一般来说,如果训练数据集中样本数过少,特别是比模型参数数量(按元素计)更少时,"
        "过拟合更容易发生。",
        "fewer training examples than parameters: overfitting is likelier",
    ),
    Claim(
        "l1_sparse",
        "003_e9cfbe776e05b934.txt",
        "L1 正则化 更适合用于产生稀疏模型,会让部分权重完全为零,适合做特征选择。",
        "L1 makes some weights zero (sparse model)",
    ),
    Claim(
        "l2_small_weights",
        "003_e9cfbe776e05b934.txt",
        "L2 正则化 更适合平滑模型的参数,避免过大参数,但不会使权重变为零,"
        "适合处理高维特征较为密集的场景。",
        "L2 shrinks the weights but does not make them zero",
    ),
    Claim(
        "l2_reduces_overfitting",
        "001_2665fda0b36d1909.txt",
        "正则化通过为模型损失函数添加惩罚项使学出的模型参数值较小,是应对过拟合的常用手段。",
        "L2 (weight decay) reduces overfitting",
    ),
    Claim(
        "dropout_reduces_overfitting",
        "003_e9cfbe776e05b934.txt",
        "Dropout 是一种在训练过程中随机丢弃部分神经元的技术。"
        "它通过减少神经元之间的依赖来防止模型过于复杂,从而避免过拟合。",
        "dropout avoids overfitting",
    ),
    Claim(
        "dropout_hurts_scarce_data",
        "004_a2a657008e01d6d7.txt",
        "但是当训练数据较少时,效果不好。",
        "dropout works badly when training data are scarce",
    ),
    Claim(
        "batch_norm_reduces_overfitting",
        "004_a2a657008e01d6d7.txt",
        "减少过拟合:Batch Normalization通过破坏原来的数据分布,有助于缓解过拟合问题。",
        "batch normalization reduces overfitting",
    ),
    Claim(
        "smaller_model_reduces_overfitting",
        "003_e9cfbe776e05b934.txt",
        "减少网络层数和参数: 通过减少网络的层数、每层的神经元数量或减少卷积层的滤波器数量,"
        "可以降低模型的复杂度,减少过拟合的风险。",
        "a smaller model (fewer filters and units) reduces overfitting",
    ),
    Claim(
        "augmentation_generalizes",
        "003_e9cfbe776e05b934.txt",
        "通过对训练数据进行各种变换(如旋转、裁剪、翻转、缩放等),可以增加数据的多样性,"
        "提高模型的泛化能力。",
        "data augmentation improves generalization",
    ),
    Claim(
        "early_stopping_prevents_overfitting",
        "003_e9cfbe776e05b934.txt",
        "一种在训练过程中监控模型在验证集上的表现,并在验证误差不再改善时停止训练的技术。"
        "这样可避免训练过度,防止模型过拟合。",
        "early stopping on validation error prevents overfitting",
    ),
    Claim(
        "ensemble_reduces_overfitting",
        "003_e9cfbe776e05b934.txt",
        "通过将多个不同模型的预测结果进行集成,可以减少单个模型过拟合的风险。",
        "an ensemble beats its single members",
    ),
    Claim(
        "cross_validation_tunes",
        "003_e9cfbe776e05b934.txt",
        "使用交叉验证技术可以帮助评估模型的泛化能力,并调整模型超参数,"
        "以防止模型在训练数据上过拟合。",
        "cross-validation estimates generalization and picks a good L2 strength",
    ),
]
_CLAIMS = {claim.key: claim for claim in CLAIMS}

# Verdict thresholds (stated in each rule).
MIN_NOISE = 0.005  # test-accuracy differences below max(this, member spread) are none
SPARSE_FRACTION = 0.2  # L1: at least this fraction of |w| < near_zero ...
SPARSE_RATIO = 5.0  # ... and this many times L2's fraction
SHRINK_RATIO = 0.8  # L2: weight norm at most this fraction of the baseline's
CV_TOLERANCE = 0.03  # CV accuracy within this of the refit model's test accuracy


# Data ----------------------------------------------------------------------------


def load_data(config: RegularizationStudyConfig) -> dict:
    """Returns {"train" | "validation" | "test": (images, labels)}; train is the pool.

    Images are (n, 8, 8, 1) float32 in [0, 1]; labels (n,) int32.
    """
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
    return {
        name: (images[part], labels[part])
        for name, part in (("train", train), ("validation", validation), ("test", test))
    }


def training_subset(data: dict, size: int, seed: int) -> tuple:
    """A stratified, seeded subset of `size` examples of the training pool."""
    from sklearn.model_selection import train_test_split

    images, labels = data["train"]
    if size >= len(labels):
        return images, labels
    keep, _ = train_test_split(
        np.arange(len(labels)), train_size=size, stratify=labels, random_state=seed
    )
    return images[keep], labels[keep]


def pipelines(config, variant, train, data, seed):
    """Batched `tf.data` pipelines: (shuffled, maybe augmented) train, and validation.

    `tf.data` rather than NumPy arrays: Keras re-wraps arrays every epoch, which
    costs more than the training itself for a model this small.
    """
    import tensorflow as tf

    from kerasdl.data.image_dataset import augmentation_layers, build_pipeline

    augmentation = None
    if variant == "augmentation":
        augmentation = augmentation_layers("digits", seed=seed)
    train_pipeline = build_pipeline(
        tf.data.Dataset.from_tensor_slices(train),
        batch_size=config.batch_size,
        training=True,
        num_examples=len(train[1]),
        seed=seed,
        augmentation=augmentation,
    )
    validation_pipeline = build_pipeline(
        tf.data.Dataset.from_tensor_slices(data["validation"]),
        batch_size=512,
        training=False,
    )
    return train_pipeline, validation_pipeline


# Model ---------------------------------------------------------------------------


def build_model(
    config: RegularizationStudyConfig, variant: str, l2: float | None = None, name=None
):
    """The study's CNN, with the regularizer that `variant` names.

    conv 3x3 -> conv 3x3 -> max-pool -> dense -> logits; each block is conv/dense,
    then batch norm, then ReLU, then dropout, where the variant asks for them.
    `l2` overrides the strength of the `"l2"` variant (0 means none).
    """
    import keras

    import kerasdl

    kernel_regularizer = None
    if variant == "l2":
        strength = config.l2 if l2 is None else l2
        kernel_regularizer = kerasdl.regularizers.L2(strength) if strength else None
    elif variant == "l1":
        kernel_regularizer = kerasdl.regularizers.L1(config.l1)
    batch_norm = variant == "batch_norm"
    dropout = variant == "dropout"
    smaller = variant == "smaller"
    conv_filters = config.smaller_conv_filters if smaller else config.conv_filters
    dense_units = config.smaller_dense_units if smaller else config.dense_units

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
    for i, filters in enumerate(conv_filters):
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
        dense_units,
        use_bias=not batch_norm,
        kernel_regularizer=kernel_regularizer,
        name="dense",
    )
    x = block(x, dense, config.dense_dropout_rate, "dense")  # (batch, units)
    logits = keras.layers.Dense(
        10, kernel_regularizer=kernel_regularizer, name="logits"
    )(x)
    return keras.Model(inputs, logits, name=name or f"digits_cnn_{variant}")


def compile_model(model, config):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            # The loss without the L1/L2 penalty, so that variants compare.
            keras.metrics.SparseCategoricalCrossentropy(
                from_logits=True, name="cross_entropy"
            ),
        ],
    )
    return model


def weight_statistics(model, near_zero: float) -> dict:
    """Over every conv and dense kernel: fractions of near-zero and zero weights, norms."""
    weights = np.concatenate(
        [
            np.ravel(layer.kernel.numpy())
            for layer in model.layers
            if getattr(layer, "kernel", None) is not None
        ]
    )
    magnitudes = np.abs(weights)
    return {
        "near_zero_fraction": float(np.mean(magnitudes < near_zero)),
        "zero_fraction": float(np.mean(magnitudes == 0.0)),
        "weight_l2_norm": float(np.sqrt(np.sum(weights**2))),
        "weight_l1_norm": float(np.sum(magnitudes)),
        "max_abs_weight": float(magnitudes.max()),
        "num_weights": float(weights.size),
    }


# Train and evaluate --------------------------------------------------------------


def train_variant(
    config, variant, data, train, *, seed=None, l2=None, validate=True, name=None
) -> dict:
    """Trains one variant from `seed` (the study's by default) on `train`.

    Returns {"row": metrics, "history": curves, "model": the trained model}.
    """
    import keras

    import kerasdl

    seed = config.seed if seed is None else seed
    keras.utils.set_random_seed(seed)  # same initial weights for every variant
    model = compile_model(build_model(config, variant, l2=l2, name=name), config)
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
    train_pipeline, validation_pipeline = pipelines(config, variant, train, data, seed)

    start = time.perf_counter()
    history = model.fit(
        train_pipeline,
        validation_data=validation_pipeline if validate else None,
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=config.verbose,
    )
    seconds = time.perf_counter() - start

    best_epoch = None  # 1-based epoch whose weights early stopping restored
    if early_stopping is not None and early_stopping.best is not None:
        best_epoch = early_stopping.best_epoch + 1

    # Final models, inference mode (no dropout, batch norm's moving statistics).
    splits = {"train": train, "validation": data["validation"], "test": data["test"]}
    scores = {
        split: model.evaluate(*arrays, batch_size=512, verbose=0, return_dict=True)
        for split, arrays in splits.items()
    }
    row = {
        "epochs_run": len(history.history["loss"]),
        "train_accuracy": scores["train"]["accuracy"],
        "val_accuracy": scores["validation"]["accuracy"],
        "accuracy_gap": scores["train"]["accuracy"] - scores["validation"]["accuracy"],
        "train_loss": scores["train"]["cross_entropy"],
        "val_loss": scores["validation"]["cross_entropy"],
        "loss_gap": scores["validation"]["cross_entropy"]
        - scores["train"]["cross_entropy"],
        "test_accuracy": scores["test"]["accuracy"],
        "test_loss": scores["test"]["cross_entropy"],
        "test_loss_gap": scores["test"]["cross_entropy"]
        - scores["train"]["cross_entropy"],
        "seconds": seconds,
        **weight_statistics(model, config.near_zero),
    }
    if best_epoch is not None:
        row["best_epoch"] = best_epoch
    keys = ["cross_entropy", "accuracy"]
    if validate:
        keys += ["val_cross_entropy", "val_accuracy"]
    curves = {key: [float(v) for v in history.history[key]] for key in keys}
    return {"row": row, "history": curves, "model": model}


def train_ensemble(config, data, train, baseline) -> dict:
    """`ensemble_size` baselines from seeds seed, seed+1, ...; their averaged ensemble.

    Returns {"members": [member rows], "row": the ensemble's row}.
    """
    import keras

    import kerasdl

    members = [baseline]
    for i in range(1, config.ensemble_size):
        members.append(
            train_variant(
                config,
                "baseline",
                data,
                train,
                seed=config.seed + i,
                validate=False,
                name=f"digits_cnn_member_{i}",
            )
        )
    # The members output logits; the ensemble averages probabilities.
    probability_models = []
    for i, member in enumerate(members):
        model = member["model"]
        probabilities = keras.layers.Softmax(name=f"softmax_{i}")(model.outputs[0])
        probability_models.append(
            keras.Model(model.inputs, probabilities, name=f"member_{i}")
        )
    ensemble = kerasdl.models.ensemble(probability_models, method="average")
    ensemble.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    scores = {
        split: ensemble.evaluate(*arrays, batch_size=512, verbose=0, return_dict=True)
        for split, arrays in (
            ("train", train),
            ("validation", data["validation"]),
            ("test", data["test"]),
        )
    }
    row = {
        "members": float(len(members)),
        "train_accuracy": scores["train"]["accuracy"],
        "val_accuracy": scores["validation"]["accuracy"],
        "accuracy_gap": scores["train"]["accuracy"] - scores["validation"]["accuracy"],
        "train_loss": scores["train"]["loss"],
        "val_loss": scores["validation"]["loss"],
        "loss_gap": scores["validation"]["loss"] - scores["train"]["loss"],
        "test_accuracy": scores["test"]["accuracy"],
        "test_loss": scores["test"]["loss"],
        "test_loss_gap": scores["test"]["loss"] - scores["train"]["loss"],
    }
    return {"members": [member["row"] for member in members], "row": row}


def cross_validate_l2(config, train) -> dict:
    """k-fold CV of the L2 strength on the training subset; {l2: (mean, std, loss)}."""
    import kerasdl

    scores = {}
    for strength in config.cv_l2_grid:

        def build(strength=strength):
            return compile_model(build_model(config, "l2", l2=strength), config)

        result = kerasdl.training.cross_validate(
            build,
            *train,
            folds=config.cv_folds,
            seed=config.seed,
            fit_kwargs={
                "epochs": config.epochs,
                "batch_size": config.batch_size,
                "verbose": 0,
                # The fold's validation part is scored once, after the last epoch.
                "validation_freq": config.epochs,
            },
            metrics=["accuracy", "cross_entropy"],
        )
        scores[strength] = (
            result.mean["accuracy"],
            result.std["accuracy"],
            result.mean["cross_entropy"],
        )
    return scores


def choose_l2(scores: dict) -> float:
    """The strength with the best mean CV accuracy; ties go to the lower CV loss."""
    return min(scores, key=lambda strength: (-scores[strength][0], scores[strength][2]))


def run(output, quick: bool = False, seed: int = 0) -> Report:
    """Trains every variant at every training size; writes the figures to `output`."""
    config = RegularizationStudyConfig(seed=seed, **(QUICK if quick else {}))
    return train_and_evaluate(config, output)


def train_and_evaluate(config: RegularizationStudyConfig, workdir: str) -> Report:
    """Runs the study for `config`; writes history.json and the PNGs to `workdir`."""
    unknown = set(config.variants) - set(VARIANTS)
    if unknown or "baseline" not in config.variants:
        raise ValueError(
            f"variants must include 'baseline' and be some of {VARIANTS}; "
            f"received {config.variants}"
        )
    os.makedirs(workdir, exist_ok=True)
    data = load_data(config)
    results = Results()
    histories = {}
    cv_scores = {}
    weights = {}
    for size in config.train_sizes:
        train = training_subset(data, size, config.seed)
        size = len(train[1])
        print(f"Digits 8x8, {size} training examples, {config.epochs} epochs:")
        trained = {}
        for variant in config.variants:
            trained[variant] = train_variant(config, variant, data, train)
            _add_row(results, trained[variant]["row"], size, variant)
            histories[f"{size}/{variant}"] = trained[variant]["history"]
            print(f"  {variant:<18} {trained[variant]['row']['seconds']:5.1f}s")
        weights[size] = {
            variant: np.concatenate(
                [
                    np.ravel(layer.kernel.numpy())
                    for layer in trained[variant]["model"].layers
                    if getattr(layer, "kernel", None) is not None
                ]
            )
            for variant in ("baseline", "l1", "l2")
            if variant in trained
        }

        start = time.perf_counter()
        ensemble = train_ensemble(config, data, train, trained["baseline"])
        for i, member in enumerate(ensemble["members"]):
            for metric in (
                "train_accuracy",
                "test_accuracy",
                "train_loss",
                "test_loss",
            ):
                results.add(
                    metric, member[metric], train_size=size, variant="member", member=i
                )
        _add_row(results, ensemble["row"], size, "ensemble")
        print(f"  {'ensemble':<18} {time.perf_counter() - start:5.1f}s")

        start = time.perf_counter()
        cv_scores[size] = cross_validate_l2(config, train)
        for strength, (mean, std, loss) in cv_scores[size].items():
            results.add("cv_accuracy", mean, train_size=size, variant="cv", l2=strength)
            results.add(
                "cv_accuracy_std", std, train_size=size, variant="cv", l2=strength
            )
            results.add("cv_loss", loss, train_size=size, variant="cv", l2=strength)
        chosen = choose_l2(cv_scores[size])
        if chosen == 0.0:
            refit = trained["baseline"]["row"]
        elif chosen == config.l2 and "l2" in trained:
            refit = trained["l2"]["row"]
        else:
            refit = train_variant(config, "l2", data, train, l2=chosen)["row"]
        row = {**refit, "chosen_l2": chosen, "cv_accuracy": cv_scores[size][chosen][0]}
        _add_row(results, row, size, "cross_validated_l2")
        print(
            f"  {'cross-validation':<18} {time.perf_counter() - start:5.1f}s "
            f"(chose l2={chosen:g})"
        )
        for line in format_table(results, size).splitlines():
            print("  " + line)

    with open(os.path.join(workdir, "history.json"), "w") as f:
        json.dump(
            {"config": dataclasses.asdict(config), "history": histories}, f, indent=2
        )
    figures = [
        plot_learning_curves(
            histories, results, os.path.join(workdir, "learning_curves.png")
        ),
        plot_generalization(results, os.path.join(workdir, "generalization.png")),
        plot_weights(weights, config, os.path.join(workdir, "weights.png")),
        plot_cross_validation(
            cv_scores, results, os.path.join(workdir, "cross_validation.png")
        ),
    ]
    notes = (
        f"Digits 8x8 (scikit-learn), training subsets of {list(config.train_sizes)} "
        f"examples, validation {len(data['validation'][1])}, test "
        f"{len(data['test'][1])}; CNN of {_parameters(config):,} parameters; "
        f"{config.epochs} epochs of Adam (learning rate {config.learning_rate}), "
        f"batch {config.batch_size}; L2 {config.l2}, L1 {config.l1}, dropout "
        f"{config.conv_dropout_rate}/{config.dense_dropout_rate}, early stopping "
        f"patience {config.early_stopping_patience}; ensemble of "
        f"{config.ensemble_size} seeds; {config.cv_folds}-fold CV over L2 in "
        f"{list(config.cv_l2_grid)}. One seed per variant: the spread of the ensemble "
        "members' test accuracy is the noise level the rules use. Adam does not make "
        "L1-penalized weights exactly zero (no proximal step): they hover near zero "
        "at about the step size, hence the |w| < "
        f"{config.near_zero:g} threshold next to the exact-zero count.\n\n"
        + "\n\n".join(
            f"Training size {size}:\n\n```\n{format_table(results, size)}\n```"
            for size in _sizes(results)
        )
    )
    return Report(results, judge(results), figures=figures, notes=notes)


def _add_row(results: Results, row: dict, size: int, variant: str) -> None:
    for metric, value in row.items():
        if value is not None:
            results.add(metric, value, train_size=size, variant=variant)


def _parameters(config) -> int:
    return int(build_model(config, "baseline").count_params())


def _sizes(results: Results) -> list[int]:
    return sorted({row["train_size"] for row in results.select("test_accuracy")})


# Verdicts ------------------------------------------------------------------------


def noise_level(results: Results, size: int) -> float:
    """max(MIN_NOISE, std of the ensemble members' test accuracy) at `size`."""
    members = list(
        results.values(
            "test_accuracy", by="member", train_size=size, variant="member"
        ).values()
    )
    spread = float(np.std(members, ddof=1)) if len(members) > 1 else 0.0
    return max(MIN_NOISE, spread)


def _less_overfitting(results, variant, size):
    """(test-loss gap shrinks, test accuracy not lower by more than the noise, Δacc)."""
    base_gap = results.value("test_loss_gap", train_size=size, variant="baseline")
    gap = results.value("test_loss_gap", train_size=size, variant=variant)
    base_acc = results.value("test_accuracy", train_size=size, variant="baseline")
    acc = results.value("test_accuracy", train_size=size, variant=variant)
    return gap < base_gap, acc - base_acc >= -noise_level(results, size), acc - base_acc


def _technique_verdict(results, key, variant, figure="generalization.png"):
    sizes = _sizes(results)
    holds_at, parts = [], []
    for size in sizes:
        smaller_gap, no_worse, delta = _less_overfitting(results, variant, size)
        holds_at.append(smaller_gap and no_worse)
        gap = results.value("test_loss_gap", train_size=size, variant=variant)
        base_gap = results.value("test_loss_gap", train_size=size, variant="baseline")
        parts.append(
            f"n={size}: test-train CE gap {format_number(gap)} vs baseline "
            f"{format_number(base_gap)}, test acc {delta:+.3f} "
            f"(noise {noise_level(results, size):.3f})"
        )
    return Verdict(
        _CLAIMS[key],
        verdict(all(holds_at), any(holds_at)),
        "; ".join(parts),
        "holds if, at every training size, the test-minus-train cross-entropy gap is "
        "smaller than the baseline's and test accuracy is not lower by more than the "
        "noise (members' spread, at least 0.005); partly if at some sizes",
        figure,
    )


def judge(results: Results) -> list[Verdict]:
    """The verdict of every claim, from `results` alone."""
    sizes = _sizes(results)
    small, large = sizes[0], sizes[-1]
    verdicts = []

    # More data, less overfitting (baseline at the smallest vs the largest size).
    gap_small = results.value("test_loss_gap", train_size=small, variant="baseline")
    gap_large = results.value("test_loss_gap", train_size=large, variant="baseline")
    acc_gap = {
        size: results.value("train_accuracy", train_size=size, variant="baseline")
        - results.value("test_accuracy", train_size=size, variant="baseline")
        for size in (small, large)
    }
    parameters = results.value("num_weights", train_size=small, variant="baseline")
    verdicts.append(
        Verdict(
            _CLAIMS["overfit_small_data"],
            verdict(
                gap_small > gap_large and acc_gap[small] > acc_gap[large],
                gap_small > gap_large or acc_gap[small] > acc_gap[large],
            ),
            f"baseline ({parameters:,.0f} weights) test-train CE gap "
            f"{format_number(gap_small)} at n={small} vs {format_number(gap_large)} "
            f"at n={large}; train-test accuracy gap {acc_gap[small]:.3f} vs "
            f"{acc_gap[large]:.3f}",
            "holds if both the cross-entropy gap and the accuracy gap are larger "
            "with the smaller training set; partly if one is",
            "learning_curves.png",
        )
    )

    # L1 sparsity, L2 shrinkage.
    l1_ok, l1_part, parts = [], [], []
    for size in sizes:
        l1 = results.value("near_zero_fraction", train_size=size, variant="l1")
        l2 = results.value("near_zero_fraction", train_size=size, variant="l2")
        zero = results.value("zero_fraction", train_size=size, variant="l1")
        l1_ok.append(l1 >= SPARSE_FRACTION and l1 >= SPARSE_RATIO * l2 and zero > 0)
        l1_part.append(l1 >= SPARSE_FRACTION and l1 > l2)
        parts.append(
            f"n={size}: |w|<1e-3 for {l1:.1%} of L1 weights vs {l2:.1%} of L2's; "
            f"exactly zero {zero:.2%}"
        )
    verdicts.append(
        Verdict(
            _CLAIMS["l1_sparse"],
            verdict(all(l1_ok), any(l1_part)),
            "; ".join(parts),
            f"holds if, at every size, at least {SPARSE_FRACTION:.0%} of the L1 model's "
            f"weights are near zero (|w| < 1e-3), {SPARSE_RATIO:g}x the L2 model's "
            "fraction, and some are exactly zero; partly if, at some size, at least "
            f"{SPARSE_FRACTION:.0%} are near zero and more than the L2 model's",
            "weights.png",
        )
    )
    l2_ok, parts = [], []
    for size in sizes:
        norm = results.value("weight_l2_norm", train_size=size, variant="l2")
        base = results.value("weight_l2_norm", train_size=size, variant="baseline")
        near = results.value("near_zero_fraction", train_size=size, variant="l2")
        base_near = results.value(
            "near_zero_fraction", train_size=size, variant="baseline"
        )
        zero = results.value("zero_fraction", train_size=size, variant="l2")
        shrinks = norm <= SHRINK_RATIO * base
        dense = zero == 0 and near <= max(2 * base_near, 0.02)
        l2_ok.append((shrinks, dense))
        parts.append(
            f"n={size}: weight norm {format_number(norm)} vs baseline "
            f"{format_number(base)}; |w|<1e-3 {near:.1%} (baseline {base_near:.1%})"
        )
    verdicts.append(
        Verdict(
            _CLAIMS["l2_small_weights"],
            verdict(all(s and d for s, d in l2_ok), any(s or d for s, d in l2_ok)),
            "; ".join(parts),
            f"holds if, at every size, the L2 model's weight norm is at most "
            f"{SHRINK_RATIO:g}x the baseline's, no weight is exactly zero and its "
            "near-zero fraction is at most twice the baseline's (or 2%); partly if "
            "only one of these",
            "weights.png",
        )
    )

    verdicts.append(_technique_verdict(results, "l2_reduces_overfitting", "l2"))
    verdicts.append(
        _technique_verdict(results, "dropout_reduces_overfitting", "dropout")
    )

    # Dropout when data are scarce: its test-accuracy change, small vs large.
    delta = {
        size: _less_overfitting(results, "dropout", size)[2] for size in (small, large)
    }
    noise = noise_level(results, small)
    verdicts.append(
        Verdict(
            _CLAIMS["dropout_hurts_scarce_data"],
            verdict(
                delta[small] < -noise and small < large,
                delta[small] < delta[large] - noise and small < large,
            ),
            f"dropout's test accuracy minus the baseline's: {delta[small]:+.3f} at "
            f"n={small}, {delta[large]:+.3f} at n={large} (noise {noise:.3f})",
            "holds if dropout lowers test accuracy by more than the noise at the "
            "smallest size; partly if it only helps less there than at the largest "
            "size (by more than the noise); does not hold if it helps at least as "
            "much with scarce data",
            "generalization.png",
        )
    )
    verdicts.append(
        _technique_verdict(results, "batch_norm_reduces_overfitting", "batch_norm")
    )
    verdicts.append(
        _technique_verdict(results, "smaller_model_reduces_overfitting", "smaller")
    )

    # Augmentation: the claim is better generalization, i.e. higher test accuracy.
    parts, better = [], []
    for size in sizes:
        _, _, gain = _less_overfitting(results, "augmentation", size)
        noise = noise_level(results, size)
        better.append((gain > noise, gain >= -noise))
        parts.append(f"n={size}: test acc {gain:+.3f} vs baseline (noise {noise:.3f})")
    verdicts.append(
        Verdict(
            _CLAIMS["augmentation_generalizes"],
            verdict(all(b for b, _ in better), any(b for b, _ in better)),
            "; ".join(parts),
            "holds if augmentation raises test accuracy by more than the noise at "
            "every size; partly if at some",
            "generalization.png",
        )
    )
    verdicts.append(
        _technique_verdict(
            results,
            "early_stopping_prevents_overfitting",
            "early_stopping",
            "learning_curves.png",
        )
    )

    # Ensemble vs its members.
    parts, scores = [], []
    for size in sizes:
        members = results.values(
            "test_accuracy", by="member", train_size=size, variant="member"
        )
        member_losses = results.values(
            "test_loss", by="member", train_size=size, variant="member"
        )
        acc = results.value("test_accuracy", train_size=size, variant="ensemble")
        loss = results.value("test_loss", train_size=size, variant="ensemble")
        mean_acc = float(np.mean(list(members.values())))
        mean_loss = float(np.mean(list(member_losses.values())))
        scores.append(
            (acc > mean_acc and loss < mean_loss, acc >= max(members.values()))
        )
        parts.append(
            f"n={size}: ensemble of {len(members)} test acc {acc:.3f} vs members "
            f"{mean_acc:.3f} mean / {max(members.values()):.3f} best; test CE "
            f"{format_number(loss)} vs {format_number(mean_loss)} mean"
        )
    verdicts.append(
        Verdict(
            _CLAIMS["ensemble_reduces_overfitting"],
            verdict(
                all(better and best for better, best in scores),
                any(better for better, _ in scores),
            ),
            "; ".join(parts),
            "holds if, at every size, the ensemble's test accuracy is above the "
            "members' mean and at least their best, and its test cross-entropy below "
            "their mean; partly if it beats the mean at some size",
            "generalization.png",
        )
    )

    # Cross-validation: an honest estimate, and a choice no worse than no L2.
    parts, checks = [], []
    for size in sizes:
        estimate = results.value(
            "cv_accuracy", train_size=size, variant="cross_validated_l2"
        )
        chosen = results.value(
            "chosen_l2", train_size=size, variant="cross_validated_l2"
        )
        test = results.value(
            "test_accuracy", train_size=size, variant="cross_validated_l2"
        )
        base = results.value("test_accuracy", train_size=size, variant="baseline")
        noise = noise_level(results, size)
        checks.append((abs(estimate - test) <= CV_TOLERANCE, test - base >= -noise))
        parts.append(
            f"n={size}: chose l2={chosen:g}; CV accuracy {estimate:.3f} vs its test "
            f"accuracy {test:.3f}; test acc {test - base:+.3f} vs no L2"
        )
    verdicts.append(
        Verdict(
            _CLAIMS["cross_validation_tunes"],
            verdict(all(a and b for a, b in checks), any(a or b for a, b in checks)),
            "; ".join(parts),
            f"holds if, at every size, the CV accuracy of the chosen strength is "
            f"within {CV_TOLERANCE} of the refit model's test accuracy and that test "
            "accuracy is not below the unregularized baseline's by more than the "
            "noise; partly if one of the two somewhere",
            "cross_validation.png",
        )
    )
    return verdicts


# Report --------------------------------------------------------------------------


def format_table(results: Results, size: int) -> str:
    """The results at one training size as a fixed-width text table."""
    header = (
        f"{'variant':<18} {'epochs':>6} {'train acc':>9} {'val acc':>8} "
        f"{'gap':>6} {'train loss':>10} {'val loss':>9} {'gap':>6} "
        f"{'test acc':>8}"
    )
    lines = [header, "-" * len(header)]
    variants = []
    for row in results.select("test_accuracy", train_size=size):
        if row["variant"] not in variants and row["variant"] not in ("member", "cv"):
            variants.append(row["variant"])
    for variant in variants:

        def get(metric, variant=variant):
            rows = results.select(metric, train_size=size, variant=variant)
            return rows[0]["value"] if rows else None

        epochs = "" if get("epochs_run") is None else str(int(get("epochs_run")))
        if get("best_epoch") is not None:
            epochs = f"{int(get('best_epoch'))}/{epochs}"  # restored epoch / run
        lines.append(
            f"{variant:<18} {epochs:>6} {get('train_accuracy'):>9.3f} "
            f"{get('val_accuracy'):>8.3f} {get('accuracy_gap'):>6.3f} "
            f"{get('train_loss'):>10.3f} {get('val_loss'):>9.3f} "
            f"{get('loss_gap'):>6.3f} {get('test_accuracy'):>8.3f}"
        )
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(histories: dict, results: Results, path: str) -> str:
    """Per training size: cross-entropy and accuracy per epoch, train dashed, val solid."""
    plt = _pyplot()
    sizes = _sizes(results)
    metrics = (("cross_entropy", "cross-entropy (log scale)"), ("accuracy", "accuracy"))
    figure, axes = plt.subplots(
        len(sizes), len(metrics), figsize=(13, 4.5 * len(sizes)), squeeze=False
    )
    for row_axes, size in zip(axes, sizes):
        for ax, (metric, title) in zip(row_axes, metrics):
            variants = [
                key.split("/", 1)[1] for key in histories if key.startswith(f"{size}/")
            ]
            for i, variant in enumerate(variants):
                history = histories[f"{size}/{variant}"]
                color = f"C{i}"
                epochs = range(1, len(history[metric]) + 1)
                # Early stopping is the baseline cut short: a wide halo under it.
                if variant == "early_stopping":
                    line = {"color": color, "lw": 4, "alpha": 0.4, "zorder": 1}
                else:
                    line = {"color": color, "lw": 1.5, "alpha": 0.9, "zorder": 2}
                ax.plot(epochs, history[metric], "--", **line)
                ax.plot(epochs, history[f"val_{metric}"], "-", label=variant, **line)
                best = results.select("best_epoch", train_size=size, variant=variant)
                if best:
                    best_epoch = int(best[0]["value"])
                    ax.plot(
                        best_epoch,
                        history[f"val_{metric}"][best_epoch - 1],
                        "o",
                        color=color,
                    )
            ax.set_title(f"{title}, {size} training examples")
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            if metric == "cross_entropy":
                ax.set_yscale("log")
            else:
                ax.set_ylim(0.7, 1.005)
        row_axes[0].legend(title="variant (validation)", loc="lower left", fontsize=8)
        styles = [
            plt.Line2D([], [], color="gray", ls="--", label="train"),
            plt.Line2D([], [], color="gray", ls="-", label="validation"),
            plt.Line2D(
                [], [], color="gray", ls="", marker="o", label="restored best epoch"
            ),
        ]
        row_axes[-1].legend(handles=styles, loc="lower right", fontsize=8)
    figure.suptitle(
        "Digits 8x8 CNN: train (dashed) vs validation (solid); train curves are "
        "measured while training, dropout and augmentation active"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return os.path.basename(path)


def plot_generalization(results: Results, path: str) -> str:
    """Test accuracy and test-minus-train cross-entropy per variant and size."""
    plt = _pyplot()
    sizes = _sizes(results)
    variants = [
        v for v in (*VARIANTS, *COMBINED) if results.select("test_accuracy", variant=v)
    ]
    figure, axes = plt.subplots(1, 2, figsize=(14, 5))
    width = 0.8 / len(sizes)
    x = np.arange(len(variants))
    for j, size in enumerate(sizes):
        offset = (j - (len(sizes) - 1) / 2) * width
        for ax, metric in zip(axes, ("test_accuracy", "test_loss_gap")):
            values = [
                results.value(metric, train_size=size, variant=v) for v in variants
            ]
            ax.bar(x + offset, values, width, label=f"{size} examples", color=f"C{j}")
        members = results.values(
            "test_accuracy", by="member", train_size=size, variant="member"
        )
        ensemble_x = variants.index("ensemble") + offset
        axes[0].plot(
            [ensemble_x] * len(members),
            list(members.values()),
            "k.",
            label="ensemble members" if j == 0 else None,
        )
        base = results.value("test_accuracy", train_size=size, variant="baseline")
        axes[0].axhline(base, color=f"C{j}", lw=0.8, ls=":")
    low = min(row["value"] for row in results.select("test_accuracy"))
    axes[0].set_ylim(max(0.0, low - 0.03), 1.0)
    axes[0].set_title("test accuracy (dotted: baseline)")
    axes[1].set_title("generalization gap: test minus train cross-entropy")
    for ax in axes:
        ax.set_xticks(x, variants, rotation=35, ha="right")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return os.path.basename(path)


def plot_weights(weights: dict, config, path: str) -> str:
    """Histograms of |w| (log scale) for the baseline, L1 and L2 models."""
    plt = _pyplot()
    sizes = sorted(weights)
    figure, axes = plt.subplots(
        1, len(sizes), figsize=(6.5 * len(sizes), 4.5), squeeze=False
    )
    bins = np.logspace(-9, 0.5, 60)
    for ax, size in zip(axes[0], sizes):
        for variant, w in weights[size].items():
            magnitudes = np.maximum(np.abs(w), 1e-9)  # exact zeros in the first bin
            near = np.mean(np.abs(w) < config.near_zero)
            ax.hist(
                magnitudes,
                bins=bins,
                histtype="step",
                lw=1.5,
                label=f"{variant}: {near:.1%} below {config.near_zero:g}",
            )
        ax.axvline(config.near_zero, color="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("|w| (all kernels)")
        ax.set_title(f"{size} training examples")
        ax.legend(fontsize=8)
    figure.suptitle(
        "Weight magnitudes of the baseline, L1 and L2 models (dotted: the near-zero "
        "threshold; exact zeros would sit in the first bin)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return os.path.basename(path)


def plot_cross_validation(cv_scores: dict, results: Results, path: str) -> str:
    """CV accuracy (mean ± std over folds) against the L2 strength, per size."""
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(7, 4.5))
    for j, (size, scores) in enumerate(sorted(cv_scores.items())):
        strengths = sorted(scores)
        # λ = 0 drawn at a tenth of the smallest positive strength (log axis).
        positive = [s for s in strengths if s > 0] or [1e-3]
        xs = [s if s > 0 else min(positive) / 10 for s in strengths]
        means = [scores[s][0] for s in strengths]
        stds = [scores[s][1] for s in strengths]
        ax.errorbar(
            xs,
            means,
            yerr=stds,
            marker="o",
            capsize=3,
            color=f"C{j}",
            label=f"{size} examples: CV accuracy",
        )
        chosen = results.value(
            "chosen_l2", train_size=size, variant="cross_validated_l2"
        )
        test = results.value(
            "test_accuracy", train_size=size, variant="cross_validated_l2"
        )
        ax.plot(
            xs[strengths.index(chosen)],
            test,
            "*",
            ms=14,
            color=f"C{j}",
            label=f"{size}: chosen l2={chosen:g}, test accuracy",
        )
    ax.set_xscale("log")
    ax.set_xlabel("L2 strength (leftmost point: 0)")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("k-fold cross-validation of the L2 strength")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return os.path.basename(path)


# Main ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`python -m kerasdl.studies.regularization [--quick] [--output DIR] [--seed N]`."""
    from kerasdl.studies.command_line import main as study

    return study(["regularization", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
