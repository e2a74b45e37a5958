"""Degradation study: plain vs residual networks at depth 8, 20, 32 and 56.

    kerasdl study degradation            # about 8-10 minutes on 2 busy CPU cores
    kerasdl study degradation --quick    # seconds; files only, verdicts not meaningful

He et al. (2016) found that a deeper plain network reaches a *higher training* error
than a shallower one (not overfitting: the optimization gets harder), while the same
network with identity shortcuts does not. This study trains the CIFAR-style ResNets
of the model zoo (`kerasdl.models.cifar_resnet`, the registry's "resnet20/32/56" and
"plain20/32/56", depth 8 through the builder's `depth` argument) and their plain
twins (the same layers, with batch norm, no shortcuts) on the embedded MNIST
(`mnist8k`) and compares the final training error against depth.

To fit a CPU budget the setting is reduced from the paper's CIFAR-10 runs:

    images     the first 1,024 images of the fixed mnist8k training split,
               downsampled 28x28 -> 14x14 (2x2 average); test on the 998 test images
    widths     8 / 16 / 32 filters per stage instead of 16 / 32 / 64
    training   SGD, learning rate 0.1, momentum 0.9 (the paper's), batch 64,
               8 epochs (128 steps), no weight decay, no augmentation

so the "final training error" is the error after a short training, i.e. how fast
each network fits the images. It is measured in inference mode on the training
images after the last epoch; the per-epoch training error (training mode, running
average over the epoch) gives the curves.

Writes results.csv, summary.md and training_error.png (final training error
against depth, the paper's Fig. 1 in one panel) and training_curves.png (training
error per epoch, plain dashed, residual solid, the paper's Fig. 6) into the output
folder.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from kerasdl.studies import framework

DESCRIPTION = "plain vs residual CIFAR ResNets at depth 8-56: training error vs depth"

CLAIMS = [
    framework.Claim(
        key="plain_degrades",
        article="004_a2a657008e01d6d7.txt",
        quote="当网络更深时,网络的参数空间更大,优化问题变得更难,"
        "因此简单地去增加网络的深度反而会导致更高的训练误差。",
        phrase="a deeper plain network reaches a higher training error",
    ),
    framework.Claim(
        key="residual_does_not_degrade",
        article="004_a2a657008e01d6d7.txt",
        quote="残差模块在输入和输出之间建立了一个直接连接,"
        "这样新增的网络层仅仅需要在原来的输出层基础上学习新的特征,即学习残差,会比较容易",
        phrase="with shortcuts the deeper network trains as well as the shallower one",
    ),
]
_CLAIM = {claim.key: claim for claim in CLAIMS}

KINDS = ("plain", "residual")
# Verdict threshold: a difference in training error that counts (stated in the rules).
MARGIN = 0.02
REFERENCE_DEPTH = 20  # the shallower network the deepest one is compared with


@dataclasses.dataclass(frozen=True)
class DegradationStudyConfig:
    """Every hyperparameter of the study."""

    depths: tuple[int, ...] = (8, 20, 32, 56)
    train_size: int = 1024
    downsample: int = 2  # 28x28 -> 14x14
    widths: tuple[int, int, int] = (8, 16, 32)
    batch_size: int = 64
    epochs: int = 8
    learning_rate: float = 0.1
    momentum: float = 0.9
    test_size: int | None = None  # all 998
    run_eagerly: bool = False


QUICK = DegradationStudyConfig(
    depths=(8, 14),
    train_size=128,
    downsample=4,  # 7x7
    batch_size=64,
    epochs=1,
    test_size=128,
    run_eagerly=True,
)


# Data ----------------------------------------------------------------------------


def load_data(config: DegradationStudyConfig) -> dict:
    """{"train" | "test": (images (n, 28/d, 28/d, 1) in [0, 1], labels)}."""
    from kerasdl.data import embedded_images

    images, labels = embedded_images.load_mnist8k_arrays()
    train, _, test = embedded_images.split_indices("mnist8k")
    d = config.downsample
    splits = {}
    for split, indices in (
        ("train", train[: config.train_size]),
        ("test", test[: config.test_size]),
    ):
        x = images[indices].astype(np.float32) / 255.0  # (n, 28, 28, 1)
        x = x.reshape(len(x), 28 // d, d, 28 // d, d, 1).mean(axis=(2, 4))
        splits[split] = (x, labels[indices])
    return splits


# Model ---------------------------------------------------------------------------


def build_model(kind: str, depth: int, input_shape, config: DegradationStudyConfig):
    """The zoo's CIFAR ResNet (`kind="residual"`) or plain twin at `depth`."""
    import kerasdl

    residual = kind == "residual"
    name = f"{'resnet' if residual else 'plain'}{depth}"
    if name in kerasdl.models.MODELS:
        return kerasdl.models.get_model(name, input_shape, 10, widths=config.widths)
    return kerasdl.models.cifar_resnet(
        input_shape, 10, depth=depth, residual=residual, widths=config.widths
    )


def error_rate(model, images, labels) -> float:
    probabilities = np.asarray(model(images, training=False))
    wrong = np.argmax(np.nan_to_num(probabilities, nan=-1.0), axis=-1) != labels
    return float(np.mean(wrong | np.isnan(probabilities).any(axis=-1)))


# Training ------------------------------------------------------------------------


def train_all(data, config: DegradationStudyConfig, seed: int, results) -> None:
    """Trains plain and residual networks at every depth; fills `results`."""
    import keras

    x_train, y_train = data["train"]
    x_test, y_test = data["test"]
    for depth in config.depths:
        for kind in KINDS:
            keras.utils.set_random_seed(seed)  # the same batches for every network
            model = build_model(kind, depth, x_train.shape[1:], config)
            model.compile(
                optimizer=keras.optimizers.SGD(
                    config.learning_rate, momentum=config.momentum
                ),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
                run_eagerly=config.run_eagerly,
            )
            start = time.perf_counter()
            history = model.fit(
                x_train,
                y_train,
                batch_size=config.batch_size,
                epochs=config.epochs,
                shuffle=True,
                verbose=0,
            ).history
            seconds = time.perf_counter() - start
            configuration = {"kind": kind, "depth": depth}
            for epoch, accuracy in enumerate(history["accuracy"], start=1):
                results.add(
                    "epoch_train_error",
                    1.0 - np.nan_to_num(accuracy),
                    epoch=epoch,
                    **configuration,
                )
            results.add(
                "train_error", error_rate(model, x_train, y_train), **configuration
            )
            results.add(
                "test_error", error_rate(model, x_test, y_test), **configuration
            )
            results.add("final_train_loss", history["loss"][-1], **configuration)
            results.add("parameters", model.count_params(), **configuration)
            results.add("seconds", seconds, **configuration)
            keras.backend.clear_session()


# Verdicts ------------------------------------------------------------------------


def judge(results: framework.Results) -> list[framework.Verdict]:
    """The verdict rules; a pure function of the results."""
    plain = results.values("train_error", "depth", kind="plain")
    residual = results.values("train_error", "depth", kind="residual")
    depths = sorted(plain)
    deepest = depths[-1]
    reference = REFERENCE_DEPTH if REFERENCE_DEPTH in plain else depths[0]
    shallower = [d for d in depths if d < deepest]

    def errors(values):
        return ", ".join(f"{d}: {100 * values[d]:.1f}%" for d in depths)

    measured = (
        f"training error by depth, plain {errors(plain)}; residual {errors(residual)}"
    )
    pp = f"{100 * MARGIN:g} pp"

    # A deeper plain network trains worse.
    plain_gap = plain[deepest] - plain[reference]
    worst_gap = plain[deepest] - min(
        (plain[d] for d in shallower), default=plain[deepest]
    )
    plain_verdict = framework.Verdict(
        _CLAIM["plain_degrades"],
        framework.verdict(holds=plain_gap >= MARGIN, partly=worst_gap >= MARGIN),
        f"{measured} (plain {deepest} minus plain {reference}: "
        f"{100 * plain_gap:+.1f} pp)",
        f"holds if plain-{deepest}'s training error exceeds plain-{reference}'s by "
        f">= {pp}; partly if it exceeds only a shallower plain network's by {pp}",
        "training_error.png",
    )

    # With shortcuts the deeper network does not train worse.
    residual_gap = residual[deepest] - residual[reference]
    no_degradation = residual_gap <= MARGIN
    beats_plain = residual[deepest] <= plain[deepest] - MARGIN
    residual_verdict = framework.Verdict(
        _CLAIM["residual_does_not_degrade"],
        framework.verdict(
            holds=no_degradation and beats_plain, partly=no_degradation or beats_plain
        ),
        f"residual {deepest} minus residual {reference}: {100 * residual_gap:+.1f} pp; "
        f"residual {deepest} minus plain {deepest}: "
        f"{100 * (residual[deepest] - plain[deepest]):+.1f} pp",
        f"holds if resnet-{deepest}'s training error is at most resnet-{reference}'s "
        f"+ {pp} and at least {pp} below plain-{deepest}'s; partly if only one of the "
        "two",
        "training_error.png",
    )
    return [plain_verdict, residual_verdict]


# Figures -------------------------------------------------------------------------


def plot(results: framework.Results, config, output) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(sorted(config.depths), plt.cm.viridis(np.linspace(0, 0.85, 4))))
    styles = {"plain": "--", "residual": "-"}

    # Final training (and test) error against depth.
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for kind in KINDS:
        for metric, marker, alpha in (
            ("train_error", "o", 1.0),
            ("test_error", "x", 0.5),
        ):
            values = results.values(metric, "depth", kind=kind)
            depths = sorted(values)
            ax.plot(
                depths,
                [100 * values[d] for d in depths],
                styles[kind],
                marker=marker,
                alpha=alpha,
                color="tab:blue" if kind == "plain" else "tab:orange",
                label=f"{kind}, {metric.replace('_', ' ')}",
            )
    ax.set_xticks(sorted(config.depths))
    ax.set_xlabel("depth (weighted layers)")
    ax.set_ylabel("error (%)")
    ax.set_title(f"mnist8k, {config.train_size} images, {config.epochs} epochs")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    figures = [framework.save_figure(fig, output, "training_error.png")]

    # Training error per epoch.
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for depth in sorted(config.depths):
        for kind in KINDS:
            curve = results.values("epoch_train_error", "epoch", kind=kind, depth=depth)
            epochs = sorted(curve)
            ax.plot(
                epochs,
                [100 * curve[e] for e in epochs],
                styles[kind],
                color=colors[depth],
                label=f"{'resnet' if kind == 'residual' else 'plain'}-{depth}",
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("training error (%, training mode)")
    ax.set_title("Plain (dashed) vs residual (solid)")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    figures.append(framework.save_figure(fig, output, "training_curves.png"))
    return figures


# Run -----------------------------------------------------------------------------


def run(output, quick: bool = False, seed: int = 0) -> framework.Report:
    """Trains every network; returns the report (figures written to `output`)."""
    config = QUICK if quick else DegradationStudyConfig()
    os.makedirs(output, exist_ok=True)
    data = load_data(config)
    results = framework.Results()
    train_all(data, config, seed, results)
    figures = plot(results, config, output)
    size = data["train"][0].shape[1]
    notes = (
        "Reduced from He et al.'s CIFAR-10 setting to fit the CPU budget: "
        f"{config.train_size} mnist8k training images downsampled to {size}x{size}, "
        f"stage widths {'/'.join(map(str, config.widths))} (the paper: 16/32/64), "
        f"{config.epochs} epochs at batch {config.batch_size} "
        f"({config.epochs * -(-config.train_size // config.batch_size)} steps; the "
        "paper: 64k steps at batch 128), SGD lr "
        f"{config.learning_rate:g} momentum {config.momentum:g}, no weight decay and no "
        "augmentation. The training error is therefore how far each network gets in "
        "a short training, one run per network (seed "
        f"{seed}), on {config.train_size} images (1 image = "
        f"{100 / config.train_size:.2f} pp). Plain and residual networks have the "
        "same layers and parameters (parameter-free zero-padding shortcuts, option A)."
    )
    return framework.Report(results, judge(results), figures=figures, notes=notes)
