"""Initialization study: six weight initializers in 10-layer tanh and ReLU MLPs.

    kerasdl study initialization          # ~150 s of CPU (14 min on 2 shared cores)
    kerasdl study initialization --quick  # ~15 s of CPU; files only, no real verdicts

The classic experiment (CS231n; the 002 article's histograms): a 10-layer MLP,
64 units per hidden layer, tanh or ReLU, on scikit-learn's 8x8 digits as 64
standardized features (the same data as the `activations` study: 1,248 training
images, 269 test images), with every dense kernel (hidden layers and logits)
drawn from one of

    zeros        all weights 0
    constant     all weights 1/64, so each unit starts as the mean of its inputs
    normal_0.01  N(0, 0.01^2)
    normal_1     N(0, 1)
    xavier       Xavier/Glorot normal, variance 2 / (fan_in + fan_out)
    he           He normal, variance 2 / fan_in

(biases start at 0), once plain and once with batch normalization between each
dense layer and its activation (`kerasdl.models.mlp(normalization="batch")`).

Measured for each (activation, normalization, initializer):

    activation_std       before training, the standard deviation of each hidden
                         layer's output on a fixed probe batch of 256 training
                         images (with batch norm: batch statistics, as training
                         sees them); the histograms of these outputs are the
                         figures
    saturated_fraction   tanh: share of outputs with |y| > 0.99, per layer
    gradient_norm,       before training, `kerasdl.callbacks.GradientStatistics`'
    gradient_ratio       norm of each hidden kernel's gradient on the probe batch,
                         and the first/last hidden kernel ratio
    distinct_units       after training, per hidden layer, the number of distinct
                         units: units whose incoming weights (kernel column, bias,
                         batch-norm scale and offset) are equal within 1e-6 count as
                         one, so a layer whose symmetry was never broken has 1
    train_accuracy,      after 20 epochs of SGD (learning rate 0.003, momentum 0.9,
    test_accuracy        batch 32; the `activations` study's optimizer), in inference
                         mode

Files written to the output folder: results.csv, summary.md,
histograms_tanh.png and histograms_relu.png (one panel per initializer, each
hidden layer's output distribution before training, no normalization),
activation_std.png (standard deviation against layer), accuracy.png (training
accuracy per initializer, without and with batch norm).
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from kerasdl.studies import framework
from kerasdl.studies.activations import (
    load_digit_features,
    probe_batch,
    probe_before_training,
    quiet_retracing_warnings,
)
from kerasdl.studies.framework import format_number

DESCRIPTION = (
    "zeros / constant / N(0, 0.01) / N(0, 1) / Xavier / He in 10-layer tanh and "
    "ReLU MLPs, with and without batch norm: activations, symmetry, training"
)

# Quotes are copied from the articles; " … " joins two passages of one article.
CLAIMS = [
    framework.Claim(
        key="zeros_symmetric",
        article="002_63dcdd9d2821722c.txt",
        quote="1.首先全零初始化是不可用的,如果所有的参数都是0,那么所有神经元的输出都将是相同的,"
        "那在back propagation的时候同一层内所有神经元的行为也是相同的 --- gradient相同,"
        "weight update也相同。这显然是一个不可接受的结果。",
        phrase="all-zero initialization makes every hidden unit of a layer identical",
    ),
    framework.Claim(
        key="constant_symmetric",
        article="001_2665fda0b36d1909.txt",
        quote="如果将每个隐藏单元的参数都初始化为相等的值,那么在正向传播时每个隐藏单元将根据相同的输入计算出相同的值,"
        "并传递至输出层。在反向传播中,每个隐藏单元的参数梯度值相等。因此,这些参数在使用基于梯度的优化算法迭代后值依然相等。"
        "之后的迭代也是如此。在这种情况下,无论隐藏单元有多少,隐藏层本质上只有1个隐藏单元在发挥作用。",
        phrase="equal initial weights leave one working unit per layer, however wide",
    ),
    framework.Claim(
        key="small_normal_vanishes",
        article="002_63dcdd9d2821722c.txt",
        quote="随着层数的增加,我们看到输出值迅速向0靠拢,在后几层中,几乎所有的输出值X都很接近0!",
        phrase="with N(0, 0.01) weights, a deep tanh network's outputs collapse to 0",
    ),
    framework.Claim(
        key="large_normal_saturates",
        article="002_63dcdd9d2821722c.txt",
        quote="几乎所有的值集中在-1或1附近,神经元saturated了!",
        phrase="with N(0, 1) weights, a deep tanh network saturates at -1 and 1",
    ),
    framework.Claim(
        key="xavier_tanh_not_relu",
        article="002_63dcdd9d2821722c.txt",
        quote="输出值在很多层之后依然保持着良好的分布,这很有利于我们优化神经网络!"
        "之前谈到Xavier initialization是在线性函数上推导得出,这说明它对非线性函数并不具有普适性,"
        "所以这个例子仅仅说明它对tanh很有效,那么对于目前最常用的ReLU神经元呢?输出如下图"
        " … 前面看起来还不错,后面的趋势却是越来越接近0。",
        phrase="Xavier keeps tanh activations healthy, but ReLU activations shrink with depth",
    ),
    framework.Claim(
        key="he_fixes_relu",
        article="002_63dcdd9d2821722c.txt",
        quote="幸运的是,He initialization可以用来解决ReLU初始化的问题",
        phrase="He initialization keeps ReLU activations from shrinking, and the network trains",
    ),
    framework.Claim(
        key="batch_norm_less_sensitive",
        article="002_63dcdd9d2821722c.txt",
        quote="而有了BN,则可以有效降低深度网络对weight初始化的依赖。",
        phrase="batch normalization makes training less sensitive to the initialization",
    ),
]
_CLAIM = {claim.key: claim for claim in CLAIMS}

INITIALIZERS = ("zeros", "constant", "normal_0.01", "normal_1", "xavier", "he")
RANDOM_INITIALIZERS = ("normal_0.01", "normal_1", "xavier", "he")
LABELS = {
    "zeros": "zeros",
    "constant": "constant 1/64",
    "normal_0.01": "N(0, 0.01)",
    "normal_1": "N(0, 1)",
    "xavier": "Xavier (Glorot normal)",
    "he": "He normal",
}
NORMALIZATIONS = ("none", "batch")

# Verdict thresholds (each verdict's rule states the ones it uses).
SAME_WEIGHTS = 1e-6  # incoming weights this close: one unit
COLLAPSED = 1e-3  # last-layer output std below this: collapsed to 0
SHRUNK = 1e-2  # last / first layer std below this: "rapidly towards 0"
SATURATED = 0.5  # mean saturated fraction of layers 2..10 that counts as saturated
# Last / first hidden layer output std. Within a factor 4 counts as keeping the
# spread: even at the ideal scale tanh's variance decays slowly with depth (about
# as 1 / layer, so ~0.3-0.4 over 10 layers at this width), where a badly scaled
# network's falls geometrically. Below a factor 10 counts as shrinking.
HEALTHY = (0.25, 4.0)
SHRINKS = 0.1
TRAINS = 0.9  # training accuracy that counts as "trains"
HALF = 0.5  # "less sensitive": BN's accuracy spread at most this times the plain one

FIGURE_STD = "activation_std.png"
FIGURE_ACCURACY = "accuracy.png"


def histogram_figure(activation: str) -> str:
    return f"histograms_{activation}.png"


@dataclasses.dataclass(frozen=True)
class InitializationStudyConfig:
    """Every hyperparameter of the study."""

    seed: int = 0
    activations: tuple[str, ...] = ("tanh", "relu")
    initializers: tuple[str, ...] = INITIALIZERS
    normalizations: tuple[str, ...] = NORMALIZATIONS
    depth: int = 10
    width: int = 64
    # Training: the `activations` study's optimizer.
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 0.003
    momentum: float = 0.9
    batch_norm_momentum: float = 0.9  # kerasdl.models' default
    train_size: int = 1248  # whole batches of 32
    probe_size: int = 256

    def __post_init__(self):
        if self.train_size % self.batch_size:
            raise ValueError(
                "`train_size` must be a multiple of `batch_size` (an epoch is whole "
                f"batches). Received: train_size={self.train_size}, "
                f"batch_size={self.batch_size}"
            )


QUICK = InitializationStudyConfig(
    initializers=("zeros", "xavier", "he"),
    normalizations=("none",),
    epochs=1,
    train_size=256,
    probe_size=64,
)


def initializer(name: str, width: int):
    """The Keras initializer `name` stands for (`constant` is 1 / `width`)."""
    import keras

    if name == "zeros":
        return keras.initializers.Zeros()
    if name == "constant":
        return keras.initializers.Constant(1.0 / width)
    if name == "normal_0.01":
        return keras.initializers.RandomNormal(mean=0.0, stddev=0.01)
    if name == "normal_1":
        return keras.initializers.RandomNormal(mean=0.0, stddev=1.0)
    if name == "xavier":
        return keras.initializers.GlorotNormal()
    if name == "he":
        return keras.initializers.HeNormal()
    raise ValueError(f"initializer must be one of {INITIALIZERS}. Received: {name!r}")


# Measurement ---------------------------------------------------------------------


def hidden_outputs(model, x, depth: int, training: bool) -> list[np.ndarray]:
    """Each hidden layer's output `(batch, width)` on `x`, changing no weights.

    In training mode batch normalization uses the batch's statistics and updates
    its moving averages; those are put back afterwards.
    """
    import keras

    probe = keras.Model(
        model.input,
        [model.get_layer(f"activation_{k}").output for k in range(1, depth + 1)],
    )
    weights = model.get_weights()
    outputs = probe(x, training=training)
    model.set_weights(weights)
    return [keras.ops.convert_to_numpy(y) for y in outputs]


def distinct_units(model, k: int, tolerance: float = SAME_WEIGHTS) -> int:
    """How many different units hidden layer `k` has.

    A unit is its incoming parameters: its kernel column, and its bias or its
    batch-norm scale and offset. Units within `tolerance` of each other (largest
    absolute difference) are one unit; a layer whose units never stopped being
    equal has 1.
    """
    parameters = [model.get_layer(f"hidden_{k}").kernel]
    if model.get_layer(f"hidden_{k}").use_bias:
        parameters.append(model.get_layer(f"hidden_{k}").bias)
    try:
        parameters += model.get_layer(f"hidden_{k}_norm").trainable_weights
    except ValueError:  # no normalization layer
        pass
    units = np.concatenate(
        [np.reshape(np.asarray(p), (-1, np.shape(p)[-1])) for p in parameters]
    ).T  # (width, parameters per unit)
    representatives: list[np.ndarray] = []
    for unit in units:
        if not any(np.max(np.abs(unit - r)) <= tolerance for r in representatives):
            representatives.append(unit)
    return len(representatives)


def train_network(config, data, probe, activation, normalization, init_name) -> dict:
    """Builds, probes and trains one network; returns what was measured."""
    import keras

    import kerasdl

    keras.utils.set_random_seed(config.seed)
    x_train, y_train = data["train"]
    model = kerasdl.models.get_model(
        "mlp",
        x_train.shape[1:],  # input shape
        10,  # classes
        depth=config.depth,
        width=config.width,
        activation=activation,
        initializer=initializer(init_name, config.width),
        normalization=None if normalization == "none" else normalization,
    )
    model.compile(
        optimizer=keras.optimizers.SGD(config.learning_rate, momentum=config.momentum),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # One compiled call per epoch (the training set is whole batches).
        steps_per_execution=len(x_train) // config.batch_size,
    )
    outputs = hidden_outputs(
        model, probe[0], config.depth, training=normalization != "none"
    )
    statistics = kerasdl.callbacks.GradientStatistics(
        probe_data=probe,
        every_n_epochs=config.epochs,
        training=True,  # batch norm on batch statistics, as in training
        histograms=False,
    )
    initial = probe_before_training(statistics, model)
    model.fit(
        x_train,
        y_train,
        batch_size=config.batch_size,
        epochs=config.epochs,
        callbacks=[statistics],
        verbose=0,
    )
    evaluation = {
        split: model.evaluate(
            *data[split], batch_size=len(data[split][0]), verbose=0, return_dict=True
        )
        for split in ("train", "test")
    }
    return {
        "outputs": outputs,
        "initial": initial,
        "distinct": [distinct_units(model, k) for k in range(1, config.depth + 1)],
        "evaluation": evaluation,
    }


def measure(config: InitializationStudyConfig):
    """Trains every configuration; returns the results and the histogram data.

    The histogram data are `{(activation, initializer): [layer outputs]}` of the
    networks without normalization, for the figures.
    """
    data = load_digit_features(config.train_size)
    probe = probe_batch(data["train"], config.probe_size, config.seed)
    results = framework.Results()
    histograms = {}
    for activation in config.activations:
        for normalization in config.normalizations:
            for init_name in config.initializers:
                with quiet_retracing_warnings():
                    run = train_network(
                        config, data, probe, activation, normalization, init_name
                    )
                where = {
                    "activation": activation,
                    "normalization": normalization,
                    "initializer": init_name,
                }
                if normalization == "none":
                    histograms[activation, init_name] = run["outputs"]
                for k, output in enumerate(run["outputs"], start=1):
                    results.add(
                        "activation_std", float(np.std(output)), **where, layer=k
                    )
                    if activation == "tanh":
                        results.add(
                            "saturated_fraction",
                            float(np.mean(np.abs(output) > 0.99)),
                            **where,
                            layer=k,
                        )
                norms = [
                    run["initial"]["gradient_norms"][f"hidden_{k}/kernel"]
                    for k in range(1, config.depth + 1)
                ]
                for k, norm in enumerate(norms, start=1):
                    results.add("gradient_norm", norm, **where, layer=k)
                results.add(
                    "gradient_ratio", framework.ratio(norms[0], norms[-1]), **where
                )
                for k, count in enumerate(run["distinct"], start=1):
                    results.add("distinct_units", count, **where, layer=k)
                for split in ("train", "test"):
                    results.add(
                        f"{split}_accuracy",
                        run["evaluation"][split]["accuracy"],
                        **where,
                    )
    return results, histograms


# Verdicts ------------------------------------------------------------------------


def _per_layer(results, metric, **where) -> list[float]:
    """The metric's values by layer (1..depth), [] if not measured."""
    values = results.values(metric, by="layer", **where)
    return [values[k] for k in sorted(values)]


def _std_ratio(results, activation, init_name, normalization="none") -> float:
    """Last hidden layer's output std / first hidden layer's, before training."""
    stds = _per_layer(
        results,
        "activation_std",
        activation=activation,
        initializer=init_name,
        normalization=normalization,
    )
    return framework.ratio(stds[-1], stds[0]) if stds else math.nan


def _not_measured(key, rule, figure=None):
    return framework.not_measured(_CLAIM[key], rule, figure)


def judge(results: framework.Results) -> list[framework.Verdict]:
    """The verdict on every claim, from the results alone."""
    return [
        _judge_symmetric(results, "zeros_symmetric", "zeros"),
        _judge_symmetric(results, "constant_symmetric", "constant"),
        _judge_small_normal(results),
        _judge_large_normal(results),
        _judge_xavier(results),
        _judge_he(results),
        _judge_batch_norm(results),
    ]


def _judge_symmetric(results, key, init_name):
    rule = (
        f"after training from `{init_name}`, a layer is symmetric if all its units "
        f"are one (incoming weights equal within {SAME_WEIGHTS:g}); holds if every "
        "hidden layer of every network measured (tanh and ReLU, without and with "
        "batch norm) is symmetric, partly if all layers of some networks are"
    )
    rows = results.select("distinct_units", initializer=init_name)
    if not rows:
        return _not_measured(key, rule)
    networks = {}
    for r in rows:
        networks.setdefault((r["activation"], r["normalization"]), []).append(
            r["value"]
        )
    symmetric = [all(v == 1 for v in counts) for counts in networks.values()]
    measured = {
        f"{activation}/{normalization}: max distinct units": max(counts)
        for (activation, normalization), counts in networks.items()
    }
    accuracy = {
        f"{r['activation']}/{r['normalization']} training accuracy": r["value"]
        for r in results.select("train_accuracy", initializer=init_name)
    }
    return framework.Verdict(
        _CLAIM[key],
        framework.verdict(all(symmetric), partly=any(symmetric)),
        framework.measured({**measured, **accuracy}) + " (of 64 units per layer)",
        rule,
        FIGURE_ACCURACY,
    )


def _judge_small_normal(results):
    rule = (
        "tanh, N(0, 0.01), no normalization, before training: holds if the last "
        f"hidden layer's output std is < {COLLAPSED:g} and < {SHRUNK:g} times the "
        "first layer's; partly if only one of the two"
    )
    stds = _per_layer(
        results,
        "activation_std",
        activation="tanh",
        initializer="normal_0.01",
        normalization="none",
    )
    if not stds:
        return _not_measured("small_normal_vanishes", rule, histogram_figure("tanh"))
    collapsed = stds[-1] < COLLAPSED
    shrunk = framework.ratio(stds[-1], stds[0]) < SHRUNK
    accuracy = results.get(
        "train_accuracy",
        activation="tanh",
        initializer="normal_0.01",
        normalization="none",
    )
    return framework.Verdict(
        _CLAIM["small_normal_vanishes"],
        framework.verdict(collapsed and shrunk, partly=collapsed or shrunk),
        framework.measured(
            {
                "std layer 1": stds[0],
                f"layer {len(stds)}": stds[-1],
                "training accuracy": accuracy,
            }
        ),
        rule,
        histogram_figure("tanh"),
    )


def _judge_large_normal(results):
    rule = (
        "tanh, N(0, 1), no normalization, before training: the saturated fraction "
        "(|y| > 0.99) averaged over hidden layers 2 to the last; holds if >= "
        f"{SATURATED:g}, partly if >= {SATURATED / 2:g}"
    )
    fractions = _per_layer(
        results,
        "saturated_fraction",
        activation="tanh",
        initializer="normal_1",
        normalization="none",
    )
    if len(fractions) < 2:
        return _not_measured("large_normal_saturates", rule, histogram_figure("tanh"))
    mean = float(np.mean(fractions[1:]))
    accuracy = results.get(
        "train_accuracy",
        activation="tanh",
        initializer="normal_1",
        normalization="none",
    )
    return framework.Verdict(
        _CLAIM["large_normal_saturates"],
        framework.verdict(mean >= SATURATED, partly=mean >= SATURATED / 2),
        framework.measured(
            {
                "mean saturated fraction": mean,
                "layer 1": fractions[0],
                "training accuracy": accuracy,
            }
        ),
        rule,
        histogram_figure("tanh"),
    )


def _judge_xavier(results):
    low, high = HEALTHY
    rule = (
        "Xavier, no normalization, before training, last / first hidden layer "
        f"output std: holds if tanh's is within [{low:g}, {high:g}] and ReLU's is "
        f"< {SHRINKS:g}; partly if only one of the two"
    )
    tanh = _std_ratio(results, "tanh", "xavier")
    relu = _std_ratio(results, "relu", "xavier")
    if math.isnan(tanh) or math.isnan(relu):
        return _not_measured("xavier_tanh_not_relu", rule, FIGURE_STD)
    healthy = low <= tanh <= high
    shrinks = relu < SHRINKS
    return framework.Verdict(
        _CLAIM["xavier_tanh_not_relu"],
        framework.verdict(healthy and shrinks, partly=healthy or shrinks),
        framework.measured({"tanh last/first std": tanh, "ReLU last/first std": relu}),
        rule,
        FIGURE_STD,
    )


def _judge_he(results):
    low, high = HEALTHY
    rule = (
        "ReLU, He, no normalization: holds if the last / first hidden layer output "
        f"std before training is within [{low:g}, {high:g}] and the training "
        f"accuracy is >= {TRAINS:g}; partly if only one of the two"
    )
    relu = _std_ratio(results, "relu", "he")
    accuracy = results.get(
        "train_accuracy",
        activation="relu",
        initializer="he",
        normalization="none",
    )
    if math.isnan(relu) or math.isnan(accuracy):
        return _not_measured("he_fixes_relu", rule, FIGURE_STD)
    kept = low <= relu <= high
    trains = accuracy >= TRAINS
    measured = {"ReLU/He last/first std": relu, "training accuracy": accuracy}
    xavier = _std_ratio(results, "relu", "xavier")
    if not math.isnan(xavier):
        measured["ReLU/Xavier last/first std"] = xavier
    return framework.Verdict(
        _CLAIM["he_fixes_relu"],
        framework.verdict(kept and trains, partly=kept or trains),
        framework.measured(measured),
        rule,
        FIGURE_STD,
    )


def _judge_batch_norm(results):
    rule = (
        "over the random initializers (N(0, 0.01), N(0, 1), Xavier, He) and both "
        "activations, the spread (max - min) of training accuracy: holds if with "
        f"batch norm it is <= {HALF:g} times the spread without and every network "
        f"with batch norm reaches >= {TRAINS:g}; partly if the spread is only smaller"
    )
    spreads, lowest, names = {}, {}, {}
    for normalization in NORMALIZATIONS:
        rows = [
            r
            for r in results.select("train_accuracy", normalization=normalization)
            if r["initializer"] in RANDOM_INITIALIZERS
        ]
        if len(rows) < 2:
            return _not_measured("batch_norm_less_sensitive", rule, FIGURE_ACCURACY)
        values = [r["value"] for r in rows]
        spreads[normalization] = max(values) - min(values)
        worst = min(rows, key=lambda r: r["value"])
        lowest[normalization] = worst["value"]
        names[normalization] = f"{worst['activation']}/{worst['initializer']}"
    smaller = spreads["batch"] < spreads["none"]
    much_smaller = spreads["batch"] <= HALF * spreads["none"]
    return framework.Verdict(
        _CLAIM["batch_norm_less_sensitive"],
        framework.verdict(much_smaller and lowest["batch"] >= TRAINS, partly=smaller),
        framework.measured(
            {
                "accuracy spread without BN": spreads["none"],
                "with BN": spreads["batch"],
                f"lowest without BN ({names['none']})": lowest["none"],
                f"lowest with BN ({names['batch']})": lowest["batch"],
            }
        ),
        rule,
        FIGURE_ACCURACY,
    )


# Figures -------------------------------------------------------------------------


def _figure(rows, columns, width=4.0, height=3.4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * columns, height * rows))
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, columns, squeeze=False)


def draw_histograms(histograms: dict, activation: str, output) -> str | None:
    """One panel per initializer: each hidden layer's output distribution.

    Layers are stacked bottom (layer 1) to top, each histogram scaled to the same
    height; the x range is shared by the panel's layers ([-1, 1] for tanh; for
    ReLU, up to the largest layer's 99th percentile), so a layer that collapses
    shows as a spike at 0 and one that saturates as spikes at -1 and 1. ReLU's
    exact zeros are left out of its histograms (their share is printed).
    """
    inits = [i for i in INITIALIZERS if (activation, i) in histograms]
    if not inits:
        return None
    columns = min(3, len(inits))
    rows = math.ceil(len(inits) / columns)
    figure, axes = _figure(rows, columns, height=4.2)
    for axis, init_name in zip(axes.flat, inits):
        outputs = histograms[activation, init_name]
        if activation == "tanh":
            low, high = -1.0, 1.0
        else:
            high = max(float(np.percentile(np.abs(o), 99)) for o in outputs)
            high = high if high > 0 and math.isfinite(high) else 1.0
            low = 0.0 if activation == "relu" else -high
        edges = np.linspace(low, high, 61)
        for k, values in enumerate(outputs, start=1):
            label = f"std {format_number(float(np.std(values)), 2)}"
            if activation == "relu":
                # The exact zeros (about half) would flatten the rest: left out.
                label += f", {np.mean(values == 0):.0%} = 0"
                values = values[values != 0]
            counts, _ = np.histogram(np.clip(values, low, high), bins=edges)
            heights = 0.9 * counts / max(counts.max(), 1)
            axis.fill_between(
                edges[:-1],
                k,
                k + heights,
                step="post",
                alpha=0.7,
                color=f"C{(k - 1) % 10}",
            )
            axis.text(high, k + 0.45, label, fontsize=6, ha="right")
        axis.set_yticks(range(1, len(outputs) + 1))
        axis.set_ylabel("hidden layer")
        axis.set_xlabel("output value (clipped to the range)")
        axis.set_xlim(low, high)
        axis.set_title(LABELS[init_name], fontsize=10)
    for axis in list(axes.flat)[len(inits) :]:
        axis.set_visible(False)
    figure.suptitle(
        f"{activation}: hidden layer outputs before training (probe batch, no BN)"
    )
    figure.tight_layout()
    name = histogram_figure(activation)
    figure.savefig(os.path.join(output, name), dpi=100)
    return name


def draw_figures(results: framework.Results, histograms: dict, output) -> list[str]:
    """Draws every figure; returns their file names."""
    os.makedirs(output, exist_ok=True)
    activations = sorted(
        {r["activation"] for r in results.rows if r["metric"] == "train_accuracy"},
        key=lambda a: (a != "tanh", a),
    )
    names = [draw_histograms(histograms, a, output) for a in activations]

    # Output std against layer, per activation, one line per initializer.
    figure, axes = _figure(1, len(activations), width=5.5, height=4.2)
    for axis, activation in zip(axes.flat, activations):
        for index, init_name in enumerate(INITIALIZERS):
            for normalization, style in (("none", "-"), ("batch", ":")):
                stds = results.values(
                    "activation_std",
                    by="layer",
                    activation=activation,
                    initializer=init_name,
                    normalization=normalization,
                )
                if not stds:
                    continue
                layers = sorted(stds)
                axis.plot(
                    layers,
                    [stds[k] if stds[k] > 0 else math.nan for k in layers],
                    style,
                    marker="o",
                    markersize=3,
                    color=f"C{index}",
                    label=LABELS[init_name]
                    + (" + BN" if normalization == "batch" else ""),
                )
        axis.set_yscale("log")
        axis.set_xlabel("hidden layer")
        axis.set_ylabel("output std before training")
        axis.set_title(f"{activation} (dotted: with batch norm)")
        axis.grid(True, which="both", alpha=0.3)
    axes.flat[0].legend(fontsize=6, ncol=2)
    figure.tight_layout()
    figure.savefig(os.path.join(output, FIGURE_STD), dpi=100)
    names.append(FIGURE_STD)

    # Training accuracy per initializer, without and with batch norm.
    figure, axes = _figure(1, len(activations), width=5.5, height=4.0)
    for axis, activation in zip(axes.flat, activations):
        positions = np.arange(len(INITIALIZERS))
        for offset, normalization in ((-0.2, "none"), (0.2, "batch")):
            accuracy = results.values(
                "train_accuracy",
                by="initializer",
                activation=activation,
                normalization=normalization,
            )
            if not accuracy:
                continue
            axis.bar(
                positions + offset,
                [accuracy.get(i, math.nan) for i in INITIALIZERS],
                width=0.4,
                label="no normalization" if normalization == "none" else "batch norm",
            )
        axis.axhline(0.1, color="grey", linewidth=0.8, linestyle=":")
        axis.set_xticks(positions)
        axis.set_xticklabels([LABELS[i] for i in INITIALIZERS], rotation=30, fontsize=7)
        axis.set_ylim(0, 1.02)
        axis.set_ylabel("training accuracy")
        axis.set_title(f"{activation}, 10 layers (dotted: chance)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(os.path.join(output, FIGURE_ACCURACY), dpi=100)
    names.append(FIGURE_ACCURACY)
    return [n for n in names if n]


# Study ---------------------------------------------------------------------------


def run(output, quick: bool = False, seed: int = 0) -> framework.Report:
    """Trains the networks, draws the figures and judges the claims."""
    config = dataclasses.replace(
        QUICK if quick else InitializationStudyConfig(), seed=seed
    )
    results, histograms = measure(config)
    figures = draw_figures(results, histograms, output)
    notes = (
        f"{config.depth} hidden layers of {config.width} units; initializers "
        f"{', '.join(config.initializers)} on every dense kernel (logits too), "
        f"biases 0; normalizations {', '.join(config.normalizations)}; SGD "
        f"(learning rate {config.learning_rate:g}, momentum {config.momentum:g}), "
        f"batch {config.batch_size}, {config.epochs} epochs on {config.train_size} "
        f"training images; probe batch of {config.probe_size} training images, "
        f"seed {config.seed}. Symmetry is exact arithmetic: equal units get equal "
        "gradients and equal SGD updates, so they stay equal bit for bit."
    )
    return framework.Report(results, judge(results), figures=figures, notes=notes)
