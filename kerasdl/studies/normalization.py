"""Normalization study: batch, layer, instance, group and ghost batch norm, measured.

    kerasdl study normalization            # about 6-8 minutes on 2 busy CPU cores
    kerasdl study normalization --quick    # seconds; files only, verdicts not meaningful

One small CNN on scikit-learn's 8x8 digits (1,797 images, no download; the fixed
kerasdl.data splits, the training split cut to 1,216 = 19 x 64 images so that every
batch size divides it):

    conv 3x3 16 -> norm -> ReLU -> conv 3x3 16 -> norm -> ReLU -> max-pool 2
    conv 3x3 32 -> norm -> ReLU -> conv 3x3 32 -> norm -> ReLU -> global average
    pool -> dense softmax                                        (about 17k weights)

where "norm" is nothing (`none`, the convolutions get biases), or a kerasdl layer:
`batch` (BatchNormalization, momentum 0.9), `ghost_batch` (BatchNormalization with
virtual_batch_size=8, Hoffer et al.), `layer` (LayerNormalization over H, W and C of
each sample), `instance` (InstanceNormalization) or `group` (GroupNormalization,
4 groups).

The variants of one experiment train side by side as independent towers of one
Keras model (one output each, the loss the sum of theirs): the gradient of a tower is
its own loss's, so Adam and SGD update each exactly as if it trained alone, every
tower sees the same batches, and the graph compiles once per experiment instead of
once per variant (compiling dominates on this CPU).

Four experiments:

    (a) batch size   the six variants at batch sizes 2..64, 10 epochs each, Adam at
                     1e-3 * sqrt(batch / 16) (the square-root scaling rule for
                     adaptive optimizers); test error in inference mode.
    (b) speed        none vs batch norm, SGD with momentum 0.9, batch 32, 30 epochs:
                     epochs until the validation accuracy first reaches 95%.
    (c) learning     the same runs at learning rates 0.003 .. 1 (one tower per rate:
        rate         with SGD, scaling a tower's loss by r is exactly training it at
                     learning rate r, so the rates train in one model); final
                     validation accuracy against the rate.
    (d) statistics   the batch-norm towers of (a): per channel, the population mean
                     and variance of each batch-norm input over the training images
                     (final weights, inference mode) against the moving averages
                     (|moving mean - mean| / std, |moving variance / variance - 1|)
                     and against the statistics of batches of the training size
                     (|batch mean - mean| / std); and the test error with batch
                     statistics (training mode, test batches of the training size)
                     against the moving ones (inference mode).

Writes results.csv, summary.md and batch_size.png, training_speed.png,
learning_rate.png, statistics_gap.png into the output folder.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from kerasdl.studies import framework
from kerasdl.studies.framework import format_number

DESCRIPTION = (
    "batch / layer / instance / group / ghost batch norm: batch size, training speed, "
    "learning rate, moving statistics"
)

CLAIMS = [
    framework.Claim(
        key="batch_size",
        article="000_1ec6b40b55466684.txt",
        quote="优点:适用于样本较小、样本间相互影响较大,但又不需要对整个mini-batch进行归一化的情况。",
        phrase="batch norm suffers at small batches; layer and group norm do not",
    ),
    framework.Claim(
        key="faster_training",
        article="000_1ec6b40b55466684.txt",
        quote="优点加速网络训练、防止梯度问题、优化正则化效果、降低学习率要求,"
        "并有助于缓解过拟合,从而显著提升神经网络的性能和稳定性。",
        phrase="batch norm speeds up training",
    ),
    framework.Claim(
        key="learning_rate",
        article="000_1ec6b40b55466684.txt",
        quote="优点加速网络训练、防止梯度问题、优化正则化效果、降低学习率要求,"
        "并有助于缓解过拟合,从而显著提升神经网络的性能和稳定性。",
        phrase="batch norm tolerates larger learning rates",
    ),
    framework.Claim(
        key="moving_statistics",
        article="003_e9cfbe776e05b934.txt",
        quote="由于每次输入到网络中的时小批量的样本,我们使用指数加权平均来近似表示整体的样本的均值和方差",
        phrase="the moving averages approximate the whole data's mean and variance",
    ),
]
_CLAIM = {claim.key: claim for claim in CLAIMS}

NORMALIZATIONS = ("none", "batch", "ghost_batch", "layer", "instance", "group")
LABELS = {
    "none": "no normalization",
    "batch": "batch norm",
    "ghost_batch": "ghost batch norm (8)",
    "layer": "layer norm",
    "instance": "instance norm",
    "group": "group norm (4 groups)",
}

# Verdict thresholds (stated in each verdict's rule).
SMALL_BATCH_PENALTY = 0.02  # test error, small minus large batches, that counts
FLAT_PENALTY = 0.01  # a penalty at most this (or half of batch norm's) is flat
SPEEDUP = 1.5  # epochs without / with batch norm that count as faster
GOOD_ACCURACY = 0.90  # final validation accuracy of a learning rate that works
MOVING_MEAN_ERROR = 0.1  # |moving mean - mean| / std that counts as approximate
MOVING_VARIANCE_ERROR = 0.1  # |moving variance / variance - 1| likewise


@dataclasses.dataclass(frozen=True)
class NormalizationStudyConfig:
    """Every hyperparameter of the study."""

    # Data: the training split cut to a multiple of the largest batch size.
    train_size: int = 1216
    filters: tuple[int, ...] = (16, 16, 32, 32)  # max-pool after the second
    batch_norm_momentum: float = 0.9
    ghost_batch_size: int = 8
    groups: int = 4
    # (a) batch size, and (d) on its batch-norm towers.
    batch_sizes: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    batch_size_epochs: int = 10
    adam_learning_rate: float = 1e-3  # at batch 16; times sqrt(batch / 16)
    # (b) speed and (c) learning rate: SGD with momentum, none vs batch norm.
    learning_rates: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
    reference_learning_rate: float = 0.03
    sgd_momentum: float = 0.9
    sgd_batch_size: int = 32
    sgd_epochs: int = 30
    target_accuracy: float = 0.95
    # Quick runs: sizes only, the same code.
    evaluation_limit: int | None = None
    run_eagerly: bool = False


QUICK = NormalizationStudyConfig(
    train_size=64,
    batch_sizes=(16, 32),
    batch_size_epochs=1,
    learning_rates=(0.03, 1.0),
    sgd_epochs=1,
    evaluation_limit=32,
    run_eagerly=True,
)


# Data ----------------------------------------------------------------------------


def load_data(config: NormalizationStudyConfig) -> dict:
    """{"train" | "validation" | "test": (images (n, 8, 8, 1) in [0, 1], labels)}."""
    from kerasdl.data import embedded_images

    images, labels = embedded_images.load_digits_arrays()
    images = images / 16.0
    train, validation, test = embedded_images.split_indices("digits")
    limit = config.evaluation_limit
    return {
        "train": (
            images[train[: config.train_size]],
            labels[train[: config.train_size]],
        ),
        "validation": (images[validation[:limit]], labels[validation[:limit]]),
        "test": (images[test[:limit]], labels[test[:limit]]),
    }


# Model ---------------------------------------------------------------------------


def normalization_layer(
    normalization: str, config: NormalizationStudyConfig, name: str
):
    """The kerasdl layer that `normalization` names (None for "none")."""
    import kerasdl

    if normalization == "none":
        return None
    if normalization == "batch":
        return kerasdl.layers.BatchNormalization(
            momentum=config.batch_norm_momentum, name=name
        )
    if normalization == "ghost_batch":
        return kerasdl.layers.BatchNormalization(
            momentum=config.batch_norm_momentum,
            virtual_batch_size=config.ghost_batch_size,
            name=name,
        )
    if normalization == "layer":
        return kerasdl.layers.LayerNormalization(axis=[1, 2, 3], name=name)
    if normalization == "instance":
        return kerasdl.layers.InstanceNormalization(name=name)
    if normalization == "group":
        return kerasdl.layers.GroupNormalization(groups=config.groups, name=name)
    raise ValueError(
        f"normalization must be one of {NORMALIZATIONS}. "
        f"Received: normalization={normalization!r}"
    )


def build_tower(normalization: str, config: NormalizationStudyConfig, name: str):
    """The study's CNN with `normalization` after every convolution."""
    import keras

    inputs = keras.Input((8, 8, 1), name=f"{name}_image")
    x = inputs  # (B, 8, 8, 1)
    for index, filters in enumerate(config.filters):
        x = keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=normalization == "none",
            name=f"{name}_conv{index}",
        )(x)
        norm = normalization_layer(normalization, config, f"{name}_norm{index}")
        if norm is not None:
            x = norm(x)
        x = keras.layers.ReLU(name=f"{name}_relu{index}")(x)
        if index == 1:
            x = keras.layers.MaxPooling2D(name=f"{name}_pool")(x)  # (B, 4, 4, 16)
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_average")(x)  # (B, 32)
    outputs = keras.layers.Dense(10, activation="softmax", name=f"{name}_softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def side_by_side(towers: dict):
    """One model whose outputs are the independent `towers` on the same images."""
    import keras

    inputs = keras.Input((8, 8, 1), name="image")
    return keras.Model(inputs, {name: tower(inputs) for name, tower in towers.items()})


def compile_side_by_side(model, optimizer, config, loss_weights=None):
    names = list(model.output.keys()) if isinstance(model.output, dict) else None
    model.compile(
        optimizer=optimizer,
        loss={name: "sparse_categorical_crossentropy" for name in names},
        loss_weights=loss_weights,
        metrics={name: ["accuracy"] for name in names},
        run_eagerly=config.run_eagerly,
    )


def error_rate(probabilities, labels) -> float:
    """1 - accuracy of the argmax; NaN outputs (a diverged run) count as wrong."""
    probabilities = np.asarray(probabilities)
    wrong = np.argmax(np.nan_to_num(probabilities, nan=-1.0), axis=-1) != labels
    wrong |= np.isnan(probabilities).any(axis=-1)
    return float(np.mean(wrong))


# (a) batch size and (d) statistics -------------------------------------------------


def batch_size_sweep(data, config, seed, results) -> None:
    """Trains every variant at every batch size; fills (a) and (d) rows."""
    import keras

    x_train, y_train = data["train"]
    x_test, y_test = data["test"]
    for batch_size in config.batch_sizes:
        keras.utils.set_random_seed(seed)
        names = [
            n
            for n in NORMALIZATIONS
            # Ghost batches of 8 need batches of more than 8 (at 8 it is batch norm).
            if n != "ghost_batch" or batch_size > config.ghost_batch_size
        ]
        towers = {name: build_tower(name, config, name) for name in names}
        model = side_by_side(towers)
        learning_rate = config.adam_learning_rate * math.sqrt(batch_size / 16)
        compile_side_by_side(model, keras.optimizers.Adam(learning_rate), config)
        model.fit(
            x_train,
            {name: y_train for name in names},
            batch_size=batch_size,
            epochs=config.batch_size_epochs,
            shuffle=True,
            verbose=0,
        )
        predictions = model(x_test, training=False)  # eager: no retracing per model
        for name in names:
            results.add(
                "test_error",
                error_rate(np.asarray(predictions[name]), y_test),
                experiment="batch_size",
                normalization=name,
                batch_size=batch_size,
                learning_rate=learning_rate,
                epochs=config.batch_size_epochs,
            )
        statistics_gap(towers["batch"], data, batch_size, seed, results)


def batch_norm_inputs(tower, images) -> list[np.ndarray]:
    """The inputs of each batch-norm layer of `tower` on `images`, inference mode."""
    import keras

    layers = [
        layer
        for layer in tower.layers
        if layer.__class__.__name__ == "BatchNormalization"
    ]
    probe = keras.Model(tower.input, [layer.input for layer in layers])
    activations = probe(images, training=False)  # one eager call: no retracing
    return layers, [np.asarray(a, dtype=np.float64) for a in activations]


def statistics_gap(tower, data, batch_size, seed, results) -> None:
    """(d): moving vs population vs batch statistics, and train vs inference mode."""
    x_train, _ = data["train"]
    x_test, y_test = data["test"]
    layers, activations = batch_norm_inputs(tower, x_train)
    rng = np.random.default_rng(seed)
    moving_mean_errors, moving_variance_errors, batch_mean_errors = [], [], []
    for layer, a in zip(layers, activations):
        channels = a.shape[-1]
        mean = a.reshape(-1, channels).mean(axis=0)  # (C,)
        variance = a.reshape(-1, channels).var(axis=0)
        std = np.sqrt(variance + layer.epsilon)
        moving_mean = np.asarray(layer.moving_mean)
        moving_variance = np.asarray(layer.moving_variance)
        moving_mean_errors.append(np.abs(moving_mean - mean) / std)
        moving_variance_errors.append(np.abs(moving_variance / (variance + 1e-12) - 1))
        # Batches of the training size, drawn as in training (a shuffled epoch).
        order = rng.permutation(len(a))[: len(a) // batch_size * batch_size]
        batches = a[order].reshape(-1, batch_size, *a.shape[1:])  # (n/B, B, H, W, C)
        batch_means = batches.reshape(len(batches), -1, channels).mean(axis=1)
        batch_mean_errors.append(np.abs(batch_means - mean) / std)
    configuration = {
        "experiment": "statistics",
        "normalization": "batch",
        "batch_size": batch_size,
    }
    results.add(
        "moving_mean_error",
        np.mean(np.concatenate(moving_mean_errors)),
        **configuration,
    )
    results.add(
        "moving_variance_error",
        np.mean(np.concatenate(moving_variance_errors)),
        **configuration,
    )
    results.add(
        "batch_mean_error",
        np.mean(np.concatenate([e.ravel() for e in batch_mean_errors])),
        **configuration,
    )

    # Test error with batch statistics (training mode) vs moving ones (inference).
    saved = [np.array(v) for v in tower.get_weights()]  # training mode updates them
    # Whole batches of the training size (the last partial one left out).
    order = rng.permutation(len(x_test))[: len(x_test) // batch_size * batch_size]
    wrong = []
    for batch in order.reshape(-1, batch_size):
        probabilities = np.asarray(tower(x_test[batch], training=True))
        wrong.append(error_rate(probabilities, y_test[batch]))
    tower.set_weights(saved)
    inference = error_rate(np.asarray(tower(x_test, training=False)), y_test)
    results.add("train_mode_test_error", np.mean(wrong), **configuration)
    results.add("inference_test_error", inference, **configuration)


# (b) speed and (c) learning rate ---------------------------------------------------


def learning_rate_sweep(data, config, seed, results) -> dict:
    """none and batch norm at every learning rate, in one model; returns histories."""
    import keras

    keras.utils.set_random_seed(seed)
    x_train, y_train = data["train"]
    x_validation, y_validation = data["validation"]
    towers, loss_weights = {}, {}
    for normalization in ("none", "batch"):
        for learning_rate in config.learning_rates:
            name = f"{normalization}_lr{learning_rate:g}"
            towers[name] = build_tower(normalization, config, name)
            loss_weights[name] = learning_rate  # SGD at rate 1 on r * loss = rate r
    model = side_by_side(towers)
    optimizer = keras.optimizers.SGD(1.0, momentum=config.sgd_momentum)
    compile_side_by_side(model, optimizer, config, loss_weights=loss_weights)
    history = model.fit(
        x_train,
        {name: y_train for name in towers},
        validation_data=(x_validation, {name: y_validation for name in towers}),
        batch_size=config.sgd_batch_size,
        epochs=config.sgd_epochs,
        shuffle=True,
        verbose=0,
    ).history
    curves = {}
    for normalization in ("none", "batch"):
        for learning_rate in config.learning_rates:
            name = f"{normalization}_lr{learning_rate:g}"
            curve = np.nan_to_num(history[f"val_{name}_accuracy"], nan=0.0)
            curves[normalization, learning_rate] = curve
            reached = np.flatnonzero(curve >= config.target_accuracy)
            configuration = {
                "experiment": "learning_rate",
                "normalization": normalization,
                "learning_rate": learning_rate,
                "batch_size": config.sgd_batch_size,
                "epochs": config.sgd_epochs,
            }
            results.add("final_validation_accuracy", curve[-1], **configuration)
            results.add(
                "epochs_to_target",
                reached[0] + 1 if len(reached) else math.inf,
                target=config.target_accuracy,
                **configuration,
            )
    return curves


# Verdicts ------------------------------------------------------------------------


def _small_batch_penalty(errors: dict) -> float:
    """Mean test error at the smallest third of batch sizes minus the largest third."""
    sizes = sorted(errors)
    k = max(1, len(sizes) // 3)
    return float(
        np.mean([errors[b] for b in sizes[:k]])
        - np.mean([errors[b] for b in sizes[-k:]])
    )


def _epochs(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.0f}"


def judge(results: framework.Results) -> list[framework.Verdict]:
    """The verdict rules; a pure function of the results."""
    verdicts = []

    # (a) Batch size.
    penalties = {}
    for normalization in ("batch", "layer", "group"):
        errors = results.values(
            "test_error",
            "batch_size",
            experiment="batch_size",
            normalization=normalization,
        )
        penalties[normalization] = _small_batch_penalty(errors)
    sizes = sorted(
        results.values(
            "test_error", "batch_size", experiment="batch_size", normalization="batch"
        )
    )
    k = max(1, len(sizes) // 3)
    bn = penalties["batch"]
    flat_limit = max(FLAT_PENALTY, bn / 2)
    flat = [n for n in ("layer", "group") if penalties[n] <= flat_limit]
    verdicts.append(
        framework.Verdict(
            _CLAIM["batch_size"],
            framework.verdict(
                holds=bn >= SMALL_BATCH_PENALTY and len(flat) == 2,
                partly=(bn >= SMALL_BATCH_PENALTY and len(flat) == 1)
                or (bn >= FLAT_PENALTY and len(flat) == 2),
            ),
            "test error at batch "
            + "/".join(map(str, sizes[:k]))
            + " minus at "
            + "/".join(map(str, sizes[-k:]))
            + ": "
            + ", ".join(f"{LABELS[n]} {100 * p:+.1f} pp" for n, p in penalties.items()),
            f"holds if batch norm's small-batch penalty is >= {100 * SMALL_BATCH_PENALTY:g} pp "
            f"and layer and group norm's are both <= max({100 * FLAT_PENALTY:g} pp, half "
            "of batch norm's); partly if only one of them is, or if batch norm's is "
            f"{100 * FLAT_PENALTY:g}-{100 * SMALL_BATCH_PENALTY:g} pp with both flat",
            "batch_size.png",
        )
    )

    # (b) Speed: epochs to the target, at the reference rate and at each one's best.
    def epochs_to_target(normalization):
        return results.values(
            "epochs_to_target",
            "learning_rate",
            experiment="learning_rate",
            normalization=normalization,
        )

    none_epochs, bn_epochs = epochs_to_target("none"), epochs_to_target("batch")
    rates = sorted(none_epochs)
    reference = min(
        rates,
        key=lambda r: abs(
            math.log(r / NormalizationStudyConfig.reference_learning_rate)
        ),
    )
    target_rows = results.select("epochs_to_target", experiment="learning_rate")
    target = target_rows[0].get("target", math.nan) if target_rows else math.nan
    same_rate = framework.ratio(none_epochs[reference], bn_epochs[reference])
    best_none, best_bn = min(none_epochs.values()), min(bn_epochs.values())
    best = framework.ratio(best_none, best_bn)
    faster = [s >= SPEEDUP for s in (same_rate, best) if not math.isnan(s)]
    verdicts.append(
        framework.Verdict(
            _CLAIM["faster_training"],
            framework.verdict(
                holds=len(faster) == 2 and all(faster), partly=any(faster)
            ),
            f"epochs to {format_number(100 * target)}% validation accuracy at learning "
            f"rate {reference:g}: none {_epochs(none_epochs[reference])}, batch norm "
            f"{_epochs(bn_epochs[reference])}; at each one's best rate: none "
            f"{_epochs(best_none)}, batch norm {_epochs(best_bn)}",
            f"holds if batch norm needs >= {SPEEDUP:g}x fewer epochs both at learning "
            f"rate {reference:g} and at each one's best rate; partly if at one of them",
            "training_speed.png",
        )
    )

    # (c) Learning rate: the largest rate that still trains well.
    def accuracies(normalization):
        return results.values(
            "final_validation_accuracy",
            "learning_rate",
            experiment="learning_rate",
            normalization=normalization,
        )

    none_accuracy, bn_accuracy = accuracies("none"), accuracies("batch")

    def largest_good(accuracy):
        good = [r for r, a in accuracy.items() if a >= GOOD_ACCURACY]
        return max(good) if good else math.nan

    none_max, bn_max = largest_good(none_accuracy), largest_good(bn_accuracy)
    top = max(rates)
    holds = not math.isnan(bn_max) and (math.isnan(none_max) or bn_max > none_max)
    partly = (
        not holds
        and not math.isnan(bn_max)
        and bn_max == none_max
        and bn_accuracy[top] >= none_accuracy[top] + 0.10
    )
    verdicts.append(
        framework.Verdict(
            _CLAIM["learning_rate"],
            framework.verdict(holds, partly),
            f"largest learning rate with >= {100 * GOOD_ACCURACY:g}% final validation "
            f"accuracy: none {format_number(none_max)}, batch norm {format_number(bn_max)}; "
            f"at rate {top:g}: none {100 * none_accuracy[top]:.1f}%, batch norm "
            f"{100 * bn_accuracy[top]:.1f}%",
            f"holds if batch norm's largest good rate (>= {100 * GOOD_ACCURACY:g}%) is "
            "higher than no normalization's; partly if equal but batch norm is >= 10 pp "
            f"more accurate at the largest rate tried",
            "learning_rate.png",
        )
    )

    # (d) Moving statistics against the population's.
    mean_error = results.values(
        "moving_mean_error", "batch_size", experiment="statistics"
    )
    variance_error = results.values(
        "moving_variance_error", "batch_size", experiment="statistics"
    )
    batch_error = results.values(
        "batch_mean_error", "batch_size", experiment="statistics"
    )
    train_mode = results.values(
        "train_mode_test_error", "batch_size", experiment="statistics"
    )
    inference = results.values(
        "inference_test_error", "batch_size", experiment="statistics"
    )
    sizes = sorted(mean_error)
    approximate = {
        b: mean_error[b] <= MOVING_MEAN_ERROR
        and variance_error[b] <= MOVING_VARIANCE_ERROR
        for b in sizes
    }
    failing = [b for b in sizes if not approximate[b]]
    verdicts.append(
        framework.Verdict(
            _CLAIM["moving_statistics"],
            framework.verdict(
                holds=not failing,
                partly=bool(failing) and approximate[sizes[-1]],
            ),
            "|moving - population mean| / std at batch "
            + ", ".join(f"{b}: {format_number(mean_error[b], 2)}" for b in sizes)
            + "; |moving / population variance - 1|: "
            + ", ".join(format_number(variance_error[b], 2) for b in sizes)
            + " (a batch's own mean is off by "
            + ", ".join(format_number(batch_error[b], 2) for b in sizes)
            + " std; test error with batch / moving statistics: "
            + ", ".join(
                f"{100 * train_mode[b]:.1f}/{100 * inference[b]:.1f}%" for b in sizes
            )
            + ")",
            f"holds if at every batch size the moving mean is within "
            f"{MOVING_MEAN_ERROR:g} std of the population mean and the moving variance "
            f"within {100 * MOVING_VARIANCE_ERROR:g}% of the population variance; partly "
            "if that fails only below the largest batch size",
            "statistics_gap.png",
        )
    )
    return verdicts


# Figures -------------------------------------------------------------------------


def plot(results: framework.Results, curves: dict, config, output) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []

    # (a) Test error against batch size.
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for normalization in NORMALIZATIONS:
        errors = results.values(
            "test_error",
            "batch_size",
            experiment="batch_size",
            normalization=normalization,
        )
        if errors:
            sizes = sorted(errors)
            ax.plot(
                sizes,
                [100 * errors[b] for b in sizes],
                marker="o",
                label=LABELS[normalization],
            )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("test error (%)")
    ax.set_title("Test error against batch size (digits, 4-conv CNN)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    figures.append(framework.save_figure(fig, output, "batch_size.png"))

    # (b) Validation accuracy per epoch, none vs batch norm.
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for (normalization, rate), curve in sorted(curves.items()):
        ax.plot(
            np.arange(1, len(curve) + 1),
            100 * curve,
            color="tab:blue" if normalization == "none" else "tab:orange",
            alpha=0.35 + 0.65 * (rate == config.reference_learning_rate),
            linestyle="-" if rate == config.reference_learning_rate else ":",
            label=f"{LABELS[normalization]}, lr {rate:g}",
        )
    ax.axhline(100 * config.target_accuracy, color="gray", linewidth=0.8)
    ax.set_ylim(0, 100)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"SGD + momentum, solid: lr {config.reference_learning_rate:g}")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    figures.append(framework.save_figure(fig, output, "training_speed.png"))

    # (c) Final validation accuracy against learning rate.
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for normalization in ("none", "batch"):
        accuracy = results.values(
            "final_validation_accuracy",
            "learning_rate",
            experiment="learning_rate",
            normalization=normalization,
        )
        rates = sorted(accuracy)
        ax.plot(
            rates,
            [100 * accuracy[r] for r in rates],
            marker="o",
            label=LABELS[normalization],
        )
    ax.axhline(100 * GOOD_ACCURACY, color="gray", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_ylim(0, 100)
    ax.set_xlabel("learning rate (SGD, momentum 0.9)")
    ax.set_ylabel("final validation accuracy (%)")
    ax.set_title(f"After {config.sgd_epochs} epochs at batch {config.sgd_batch_size}")
    ax.legend()
    ax.grid(alpha=0.3)
    figures.append(framework.save_figure(fig, output, "learning_rate.png"))

    # (d) Statistics gaps against batch size.
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for metric, label in (
        ("batch_mean_error", "|batch mean - mean| / std"),
        ("moving_mean_error", "|moving mean - mean| / std"),
        ("moving_variance_error", "|moving var / var - 1|"),
    ):
        values = results.values(metric, "batch_size", experiment="statistics")
        sizes = sorted(values)
        left.plot(sizes, [values[b] for b in sizes], marker="o", label=label)
    left.set_xscale("log", base=2)
    left.set_xlabel("batch size")
    left.set_title("Batch-norm statistics vs the population's")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    for metric, label in (
        ("train_mode_test_error", "batch statistics (training mode)"),
        ("inference_test_error", "moving statistics (inference mode)"),
    ):
        values = results.values(metric, "batch_size", experiment="statistics")
        sizes = sorted(values)
        right.plot(sizes, [100 * values[b] for b in sizes], marker="o", label=label)
    right.set_xscale("log", base=2)
    right.set_xlabel("batch size")
    right.set_ylabel("test error (%)")
    right.set_title("Batch norm's test error")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    figures.append(framework.save_figure(fig, output, "statistics_gap.png"))
    return figures


# Run -----------------------------------------------------------------------------


def run(output, quick: bool = False, seed: int = 0) -> framework.Report:
    """Runs the four experiments; returns the report (figures written to `output`)."""
    config = QUICK if quick else NormalizationStudyConfig()
    os.makedirs(output, exist_ok=True)
    data = load_data(config)
    results = framework.Results()
    batch_size_sweep(data, config, seed, results)
    curves = learning_rate_sweep(data, config, seed, results)
    figures = plot(results, curves, config, output)
    notes = (
        f"Data: sklearn digits, {len(data['train'][1])} training, "
        f"{len(data['validation'][1])} validation, {len(data['test'][1])} test images "
        f"(seed {seed}; one run per configuration, so differences of 1-2 pp on "
        f"{len(data['test'][1])} test images are within noise). Batch-size sweep: "
        f"{config.batch_size_epochs} epochs at every batch size (the same images seen, "
        "so small batches take more steps), Adam at 1e-3 * sqrt(batch / 16). Batch "
        f"norm momentum {config.batch_norm_momentum} (Keras' 0.99 leaves the moving "
        "statistics behind in the few hundred steps of the large-batch runs). Ghost "
        f"batch norm uses virtual batches of {config.ghost_batch_size} and runs only at "
        "larger batch sizes (below that it is batch norm). Layer norm normalizes each "
        "sample over height, width and channels (its gamma/beta per element), group "
        f"norm uses {config.groups} groups. Learning-rate sweep: SGD, momentum "
        f"{config.sgd_momentum}, batch {config.sgd_batch_size}, {config.sgd_epochs} "
        "epochs; every rate is a tower of one model whose loss is scaled by the rate "
        "(exactly SGD at that rate)."
    )
    return framework.Report(results, judge(results), figures=figures, notes=notes)
