"""Capacity study: underfitting, overfitting and weight decay on d2l's two classics.

    kerasdl study capacity            # 20 CPU-seconds (2.5 min wall at load 15 on 2 cores)
    kerasdl study capacity --quick    # seconds; for tests

1. Polynomial regression (d2l, "Model selection, underfitting and overfitting", the
   setup behind 001_2665fda0b36d1909.txt's 过拟合欠拟合及其解决方案):

       y = 5 + 1.2 x - 3.4 x^2/2! + 5.6 x^3/3! + noise,  x ~ N(0, 1), noise ~ N(0, 0.1^2)

   The features are x^i / i! for i = 0..19. A linear model (one Keras Dense unit, no
   bias: x^0 is the bias) is fitted by minibatch SGD (learning rate 0.01, batch
   min(10, n), 400 epochs, mean squared error) on the first 2, 4 or 20 features
   (degree 1, 3 = the true function, 19), for n = 10, 20, 50 and 100 training
   examples; the test set is 1,000 fresh examples. Train and test loss are logged
   every 10 epochs.

2. Weight decay (d2l, "Weight decay"): high-dimensional linear regression with 200
   features and 20 training examples,

       y = 0.05 + sum_i 0.01 x_i + noise,  x ~ N(0, 1), noise ~ N(0, 0.01^2),

   one Dense unit initialized N(0, 1), SGD (batch 5, 100 epochs) on the mean
   squared error plus kerasdl.regularizers.L2(λ) on the kernel, for λ from 0 to 30;
   test set 1,000 examples. Keras' MSE has no 1/2, so λ and the learning rate
   (0.0015) are d2l's objective times 2: the same trajectory as d2l's λ and 0.003.

Every loss reported is the mean squared error alone (no penalty). Files written to
--output (default runs/studies/capacity/): results.csv, polynomial_curves.png,
polynomial_vs_data.png, weight_decay.png, summary.md.
"""

from __future__ import annotations

import itertools
import math
import os
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
    "polynomial regression of degree 1/3/19 vs data size (under/overfitting) and "
    "weight decay on 200-feature linear regression with 20 examples (d2l)"
)


@dataclass
class CapacityStudyConfig:
    """Every hyperparameter of the study."""

    seed: int = 0
    # Polynomial regression (d2l's setup).
    true_coefficients: tuple[float, ...] = (5.0, 1.2, -3.4, 5.6)
    max_features: int = 20  # x^0 .. x^19
    degrees: tuple[int, ...] = (1, 3, 19)
    train_sizes: tuple[int, ...] = (10, 20, 50, 100)
    test_size: int = 1000
    noise: float = 0.1
    learning_rate: float = 0.01
    max_batch_size: int = 10
    epochs: int = 400
    log_every: int = 10  # epochs between logged train/test losses
    # Weight decay (d2l's setup).
    num_inputs: int = 200
    decay_train_size: int = 20
    decay_noise: float = 0.01
    decay_learning_rate: float = 0.0015  # d2l's 0.003 on half our loss
    decay_batch_size: int = 5
    decay_epochs: int = 100
    decay_log_every: int = 5
    strengths: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


# `--quick`: two sizes, 40 epochs, two strengths, few logged points.
QUICK = {
    "train_sizes": (10, 100),
    "epochs": 40,
    "log_every": 20,
    "decay_epochs": 20,
    "decay_log_every": 10,
    "strengths": (0.0, 3.0),
}

CLAIMS = [
    Claim(
        "underfitting",
        "001_2665fda0b36d1909.txt",
        "1.一类是模型无法得到较低的训练误差,我们将这一现象称作欠拟合(underfitting);",
        "too simple a model cannot reach a low training error (underfitting)",
    ),
    Claim(
        "overfitting",
        "001_2665fda0b36d1909.txt",
        "2.另一类是模型的训练误差远小于它在测试数据集上的误差,我们称该现象为过拟合"
        "(overfitting)。",
        "too complex a model on few data: training error far below test error",
    ),
    Claim(
        "more_data_less_overfitting",
        "001_2665fda0b36d1909.txt",
        "一般来说,如果训练数据集中样本数过少,特别是比模型参数数量(按元素计)更少时,"
        "过拟合更容易发生。此外,泛化误差不会随训练数据集里样本数量增加而增大。",
        "overfitting when examples are fewer than parameters; test error does not "
        "grow with more data",
    ),
    Claim(
        "weight_decay",
        "001_2665fda0b36d1909.txt",
        "权重衰减等价于 L2 范数正则化(regularization)。正则化通过为模型损失函数添加"
        "惩罚项使学出的模型参数值较小,是应对过拟合的常用手段。",
        "weight decay (L2) makes the weights smaller and counters overfitting",
    ),
]
_CLAIMS = {claim.key: claim for claim in CLAIMS}

# Verdict thresholds (stated in each rule).
UNDERFIT_RATIO = 10.0  # degree 1's train loss vs degree 3's, at the most data
OVERFIT_RATIO = 3.0  # test / train loss of degree 19 with the fewest data
MORE_DATA_TOLERANCE = 1.1  # test loss may rise by 10% with more data (SGD noise)
DECAY_GAP_RATIO = 0.5  # best λ > 0: test-train gap at most half of λ = 0's


# Data ----------------------------------------------------------------------------


def polynomial_data(config: CapacityStudyConfig, size: int, rng) -> tuple:
    """(features (size, max_features) = x^i / i!, labels (size, 1)), float32."""
    x = rng.normal(size=(size, 1))
    powers = np.arange(config.max_features)
    features = x**powers / np.array([math.factorial(int(i)) for i in powers])
    coefficients = np.zeros(config.max_features)
    coefficients[: len(config.true_coefficients)] = config.true_coefficients
    labels = features @ coefficients + rng.normal(scale=config.noise, size=size)
    return features.astype("float32"), labels[:, None].astype("float32")


def linear_data(config: CapacityStudyConfig, size: int, rng) -> tuple:
    """d2l's 200-feature set: y = 0.05 + 0.01 * sum(x) + noise."""
    x = rng.normal(size=(size, config.num_inputs))
    y = 0.05 + 0.01 * x.sum(axis=1) + rng.normal(scale=config.decay_noise, size=size)
    return x.astype("float32"), y[:, None].astype("float32")


# Model and training --------------------------------------------------------------


def linear_model(
    num_features: int, *, use_bias: bool, l2: float = 0.0, initializer="zeros"
):
    """One Dense unit: a linear regression, optionally with an L2 penalty."""
    import keras

    import kerasdl

    inputs = keras.Input((num_features,), name="features")
    outputs = keras.layers.Dense(
        1,
        use_bias=use_bias,
        kernel_initializer=initializer,
        kernel_regularizer=kerasdl.regularizers.L2(l2) if l2 else None,
        name="linear",
    )(inputs)  # (batch, 1)
    return keras.Model(inputs, outputs, name="linear_regression")


def fit_regression(
    model, train, test, *, learning_rate, batch_size, epochs, log_every, seed
) -> dict:
    """Minibatch SGD on the MSE; train/test MSE every `log_every` epochs.

    The data are repeated so that one Keras epoch is `log_every` passes (Keras'
    per-epoch overhead would dominate 400 tiny epochs).

    Returns {"epoch": [...], "train": [...], "test": [...], "weight_norm": float}.
    """
    import keras
    import tensorflow as tf

    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss="mean_squared_error",
        metrics=[keras.metrics.MeanSquaredError(name="mse")],  # without the penalty
        steps_per_execution=32,
    )
    n = len(train[1])
    steps_per_pass = math.ceil(n / batch_size)
    dataset = (
        tf.data.Dataset.from_tensor_slices(train)
        .shuffle(n, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .repeat()
    )
    curves = {"epoch": [], "train": [], "test": []}

    def record(epoch):
        curves["epoch"].append(epoch)
        for split, (x, y) in (("train", train), ("test", test)):
            error = np.mean((model.predict_on_batch(x) - y) ** 2)
            curves[split].append(float(error))

    record(0)
    for start in range(0, epochs, log_every):
        passes = min(log_every, epochs - start)
        model.fit(dataset, epochs=1, steps_per_epoch=passes * steps_per_pass, verbose=0)
        record(start + passes)
    curves["weight_norm"] = float(np.linalg.norm(model.get_layer("linear").kernel))
    return curves


# Run -----------------------------------------------------------------------------


def run(output, quick: bool = False, seed: int = 0) -> Report:
    """Both experiments; writes the figures to `output`."""
    import keras

    config = CapacityStudyConfig(seed=seed, **(QUICK if quick else {}))
    os.makedirs(output, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    results = Results()

    # 1. Polynomial regression: degree x training size.
    test = polynomial_data(config, config.test_size, rng)
    pool = polynomial_data(config, max(config.train_sizes), rng)
    curves = {}
    for size in config.train_sizes:
        train = (pool[0][:size], pool[1][:size])  # nested training sets
        for degree in config.degrees:
            keras.utils.set_random_seed(config.seed)
            columns = degree + 1
            curve = fit_regression(
                linear_model(columns, use_bias=False),
                (train[0][:, :columns], train[1]),
                (test[0][:, :columns], test[1]),
                learning_rate=config.learning_rate,
                batch_size=min(config.max_batch_size, size),
                epochs=config.epochs,
                log_every=config.log_every,
                seed=config.seed,
            )
            curves[(degree, size)] = curve
            for metric in ("train", "test"):
                results.add(
                    f"{metric}_loss",
                    curve[metric][-1],
                    experiment="polynomial",
                    degree=degree,
                    parameters=columns,
                    train_size=size,
                )
            print(
                f"  degree {degree:>2}, n={size:>3}: train {curve['train'][-1]:.4g}, "
                f"test {curve['test'][-1]:.4g}"
            )
    # The noise floor: the true function's own error.
    noise_mse = float(
        np.mean(
            (
                test[1]
                - test[0][:, :4]
                @ np.array(config.true_coefficients, "float32")[:, None]
            )
            ** 2
        )
    )
    results.add("noise_loss", noise_mse, experiment="polynomial")

    # 2. Weight decay on high-dimensional linear regression.
    decay_train = linear_data(config, config.decay_train_size, rng)
    decay_test = linear_data(config, config.test_size, rng)
    decay_curves = {}
    for strength in config.strengths:
        keras.utils.set_random_seed(config.seed)
        curve = fit_regression(
            linear_model(
                config.num_inputs,
                use_bias=True,
                l2=strength,
                initializer=keras.initializers.RandomNormal(stddev=1.0),
            ),
            decay_train,
            decay_test,
            learning_rate=config.decay_learning_rate,
            batch_size=config.decay_batch_size,
            epochs=config.decay_epochs,
            log_every=config.decay_log_every,
            seed=config.seed,
        )
        decay_curves[strength] = curve
        for metric in ("train_loss", "test_loss", "weight_norm"):
            value = (
                curve["weight_norm"]
                if metric == "weight_norm"
                else curve[metric.split("_")[0]][-1]
            )
            results.add(metric, value, experiment="weight_decay", l2=strength)
        print(
            f"  weight decay {strength:g}: train {curve['train'][-1]:.4g}, test "
            f"{curve['test'][-1]:.4g}, |w| {curve['weight_norm']:.3g}"
        )

    figures = [
        plot_polynomial_curves(
            curves, config, noise_mse, os.path.join(output, "polynomial_curves.png")
        ),
        plot_polynomial_vs_data(
            results, config, noise_mse, os.path.join(output, "polynomial_vs_data.png")
        ),
        plot_weight_decay(
            decay_curves, results, os.path.join(output, "weight_decay.png")
        ),
    ]
    notes = (
        f"Polynomial: {config.epochs} epochs of SGD (learning rate "
        f"{config.learning_rate}, batch min({config.max_batch_size}, n)), weights "
        f"initialized at zero, nested training sets of {list(config.train_sizes)} "
        f"examples, {config.test_size} test examples; the true function's own test "
        f"MSE (the noise floor) is {format_number(noise_mse)}. Degree 19's "
        "features x^i/i! are tiny for |x| < 3 (19! ~ 1.2e17), so SGD moves its "
        "high-order coefficients little: a built-in regularization that d2l's "
        "choice of features relies on. As in d2l, the schedule is in epochs: with "
        f"n = {min(config.train_sizes)} that is {config.epochs} SGD steps, with "
        f"n = {max(config.train_sizes)} "
        f"{config.epochs * math.ceil(max(config.train_sizes) / config.max_batch_size)}"
        ", so with the fewest data even degree 3 is not converged (its cubic "
        "coefficient learns slowly) and its test/train ratio is large too. "
        "Weight decay: "
        f"{config.num_inputs} features, {config.decay_train_size} training "
        f"examples, {config.decay_epochs} epochs of SGD (learning rate "
        f"{config.decay_learning_rate}, batch {config.decay_batch_size}), weights "
        "initialized N(0, 1) as in d2l. One seed."
    )
    return Report(results, judge(results), figures=figures, notes=notes)


# Verdicts ------------------------------------------------------------------------


def judge(results: Results) -> list[Verdict]:
    """The verdict of every claim, from `results` alone."""
    poly = {"experiment": "polynomial"}
    sizes = sorted({row["train_size"] for row in results.select("test_loss", **poly)})
    degrees = sorted({row["degree"] for row in results.select("test_loss", **poly)})
    low, true_degree, high = degrees[0], 3, degrees[-1]
    few, most = sizes[0], sizes[-1]

    def loss(split, degree, size):
        return results.value(f"{split}_loss", degree=degree, train_size=size, **poly)

    verdicts = []
    # Underfitting: degree 1 vs the true degree 3, with the most data.
    train_low, test_low = loss("train", low, most), loss("test", low, most)
    train_true, test_true = (
        loss("train", true_degree, most),
        loss("test", true_degree, most),
    )
    high_train = train_low >= UNDERFIT_RATIO * train_true
    verdicts.append(
        Verdict(
            _CLAIMS["underfitting"],
            verdict(high_train and test_low >= UNDERFIT_RATIO * test_true, high_train),
            f"n={most}: degree {low} train MSE {format_number(train_low)}, test "
            f"{format_number(test_low)}; degree 3 train {format_number(train_true)}, "
            f"test {format_number(test_true)}",
            f"holds if, with the most data, degree {low}'s train and test MSE are both "
            f"at least {UNDERFIT_RATIO:g}x those of the true degree 3; partly if only "
            "the train MSE is",
            "polynomial_curves.png",
        )
    )

    # Overfitting: degree 19 with the fewest data.
    train_high, test_high = loss("train", high, few), loss("test", high, few)
    ratio_high = test_high / max(train_high, 1e-12)
    ratio_true = loss("test", true_degree, few) / max(
        loss("train", true_degree, few), 1e-12
    )
    far_below = ratio_high >= OVERFIT_RATIO
    worse_than_true = test_high > loss("test", true_degree, few)
    verdicts.append(
        Verdict(
            _CLAIMS["overfitting"],
            verdict(
                far_below and worse_than_true and ratio_high > ratio_true,
                far_below or (worse_than_true and ratio_high > ratio_true),
            ),
            f"n={few}: degree {high} train MSE {format_number(train_high)}, test "
            f"{format_number(test_high)} (test/train {format_number(ratio_high)}; "
            f"degree 3: {format_number(ratio_true)}, test "
            f"{format_number(loss('test', true_degree, few))})",
            f"holds if, with the fewest data, degree {high}'s test MSE is at least "
            f"{OVERFIT_RATIO:g}x its train MSE, that ratio exceeds degree 3's and its "
            "test MSE is above degree 3's; partly if the ratio alone, or the last two",
            "polynomial_curves.png",
        )
    )

    # More data: degree 19's test/train ratio falls and no test loss grows.
    ratios = {
        size: loss("test", high, size) / max(loss("train", high, size), 1e-12)
        for size in sizes
    }
    gap_falls = ratios[few] > ratios[most]
    grows = [
        f"degree {d} n={a}->{b}"
        for d in degrees
        for a, b in itertools.pairwise(sizes)
        if loss("test", d, b) > MORE_DATA_TOLERANCE * loss("test", d, a)
    ]
    verdicts.append(
        Verdict(
            _CLAIMS["more_data_less_overfitting"],
            verdict(gap_falls and not grows and few < most, gap_falls and few < most),
            f"degree {high} test/train MSE "
            + ", ".join(f"{format_number(ratios[s])} at n={s}" for s in sizes)
            + "; test MSE grew with more data: "
            + (", ".join(grows) if grows else "never"),
            f"holds if degree {high}'s test/train ratio is lower with the most data "
            f"than with the fewest and no degree's test MSE rises by more than "
            f"{MORE_DATA_TOLERANCE - 1:.0%} from one size to the next; partly if only "
            "the first",
            "polynomial_vs_data.png",
        )
    )

    # Weight decay.
    decay = {"experiment": "weight_decay"}
    strengths = sorted({row["l2"] for row in results.select("test_loss", **decay)})
    test = results.values("test_loss", by="l2", **decay)
    train = results.values("train_loss", by="l2", **decay)
    norms = results.values("weight_norm", by="l2", **decay)
    best = min((s for s in strengths if s > 0), key=lambda s: test[s], default=None)
    if best is None or 0.0 not in test:
        holds = partly = False
        measured = "needs λ = 0 and some λ > 0"
    else:
        gap0, gap = test[0.0] - train[0.0], test[best] - train[best]
        closes = gap <= DECAY_GAP_RATIO * gap0 and test[best] < test[0.0]
        shrinks = all(norms[a] >= norms[b] for a, b in itertools.pairwise(strengths))
        holds, partly = closes and shrinks, closes or shrinks
        measured = (
            f"λ=0: train MSE {format_number(train[0.0])}, test "
            f"{format_number(test[0.0])}, |w| {format_number(norms[0.0])}; best "
            f"λ={best:g}: train {format_number(train[best])}, test "
            f"{format_number(test[best])}, |w| {format_number(norms[best])}; |w| by λ "
            + ", ".join(format_number(norms[s]) for s in strengths)
        )
    verdicts.append(
        Verdict(
            _CLAIMS["weight_decay"],
            verdict(holds, partly),
            measured,
            f"holds if the weight norm never grows with λ and the λ > 0 with the "
            f"lowest test MSE has a test-train gap at most {DECAY_GAP_RATIO:g}x λ=0's "
            "and a lower test MSE; partly if one of the two",
            "weight_decay.png",
        )
    )
    return verdicts


# Figures -------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_polynomial_curves(curves, config, noise_mse, path) -> str:
    """Train and test MSE per epoch: one column per degree, one row per size."""
    plt = _pyplot()
    sizes = [config.train_sizes[0], config.train_sizes[-1]]
    figure, axes = plt.subplots(
        len(sizes),
        len(config.degrees),
        figsize=(4.5 * len(config.degrees), 3.6 * len(sizes)),
        squeeze=False,
        sharey=True,
    )
    for row_axes, size in zip(axes, sizes):
        for ax, degree in zip(row_axes, config.degrees):
            curve = curves[(degree, size)]
            ax.plot(curve["epoch"], curve["train"], label="train")
            ax.plot(curve["epoch"], curve["test"], label="test")
            ax.axhline(noise_mse, color="gray", ls=":", label="noise floor")
            ax.set_yscale("log")
            ax.set_title(f"degree {degree} ({degree + 1} coefficients), n={size}")
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        row_axes[0].set_ylabel("mean squared error")
        row_axes[0].legend(fontsize=8)
    figure.suptitle(
        "y = 5 + 1.2x - 3.4x²/2! + 5.6x³/3! + noise: "
        "underfitting (degree 1) and overfitting (degree 19, few data)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return os.path.basename(path)


def plot_polynomial_vs_data(results, config, noise_mse, path) -> str:
    """Final train (dashed) and test (solid) MSE against the training size."""
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(7, 4.5))
    for i, degree in enumerate(config.degrees):
        for split, style in (("train", "--"), ("test", "-")):
            values = results.values(
                f"{split}_loss", by="train_size", experiment="polynomial", degree=degree
            )
            sizes = sorted(values)
            ax.plot(
                sizes,
                [values[s] for s in sizes],
                style,
                marker="o",
                color=f"C{i}",
                label=f"degree {degree}, {split}",
            )
    ax.axhline(noise_mse, color="gray", ls=":", label="noise floor")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel(f"MSE after {config.epochs} epochs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("Model capacity vs amount of data")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return os.path.basename(path)


def plot_weight_decay(decay_curves, results, path) -> str:
    """Left: curves for λ = 0 and the largest λ; right: final MSE and |w| against λ."""
    plt = _pyplot()
    strengths = sorted(decay_curves)
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    shown = [
        strengths[0],
        min(
            (s for s in strengths if s > 0),
            key=lambda s: decay_curves[s]["test"][-1],
            default=strengths[-1],
        ),
    ]
    for i, strength in enumerate(dict.fromkeys(shown)):
        curve = decay_curves[strength]
        axes[0].plot(
            curve["epoch"],
            curve["train"],
            "--",
            color=f"C{i}",
            label=f"λ={strength:g} train",
        )
        axes[0].plot(
            curve["epoch"],
            curve["test"],
            "-",
            color=f"C{i}",
            label=f"λ={strength:g} test",
        )
    axes[0].set_yscale("log")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("mean squared error")
    axes[0].legend(fontsize=8)
    axes[0].set_title("200 features, 20 training examples")
    xs = [
        s
        if s > 0
        else min(s for s in strengths if s > 0) / 10
        if any(s > 0 for s in strengths)
        else 1e-2
        for s in strengths
    ]
    for split, style in (("train", "--"), ("test", "-")):
        values = results.values(f"{split}_loss", by="l2", experiment="weight_decay")
        axes[1].plot(
            xs, [values[s] for s in strengths], style, marker="o", label=f"{split} MSE"
        )
    norms = results.values("weight_norm", by="l2", experiment="weight_decay")
    twin = axes[1].twinx()
    twin.plot(
        xs, [norms[s] for s in strengths], ":", marker="s", color="k", label="|w|"
    )
    twin.set_ylabel("weight norm |w|")
    twin.set_yscale("log")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("λ (leftmost point: 0)")
    axes[1].legend(loc="upper center", fontsize=8)
    twin.legend(loc="upper right", fontsize=8)
    axes[1].set_title("after training, against the weight decay λ")
    for ax in axes:
        ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return os.path.basename(path)
