"""Activations study: six activations in MLPs 2 to 20 layers deep, measured.

    kerasdl study activations            # ~100 s of CPU time (13 min on 2 shared cores)
    kerasdl study activations --quick    # ~15 s of CPU; files only, no real verdicts

The data are scikit-learn's 8x8 digits as 64 standardized features (the fixed
kerasdl.data splits: the first 1,248 = 39 x 32 of the 1,259 training images, so
that an epoch is whole batches, and the 269 test images; mean and standard
deviation from the training images). For every activation

    sigmoid, tanh, softsign        saturating, initialized Xavier/Glorot normal
    relu, leaky_relu (slope 0.2),  not saturating for positive inputs,
    gelu                           initialized He normal

and depth (2, 5, 10, 20 hidden layers of 64 units), one `kerasdl.models.mlp` is
trained from the same seed, with the same optimizer (SGD, learning rate 0.003,
momentum 0.9; plain SGD, because an adaptive optimizer such as Adam rescales every
weight's step and so hides part of what a vanishing gradient does), batch 32, for
20 epochs. Each activation gets the initializer it is usually paired with, so that
the comparison is between activations in their best-known setting; what the
initializer itself does is the `initialization` study's subject.

`kerasdl.callbacks.GradientStatistics` measures, on one fixed probe batch of 256
training images, before training and after it:

    gradient_norm       ||dL/dW|| of every hidden kernel (`hidden_k/kernel`)
    gradient_ratio      first hidden kernel's gradient norm / last hidden kernel's:
                        1 when the gradient reaches the first layer intact, << 1
                        when it vanishes on the way back, >> 1 when it explodes
    saturated_fraction  sigmoid/tanh/softsign: share of hidden outputs in the
                        saturated zone (sigmoid < 0.01 or > 0.99, |y| > 0.99),
                        mean over the hidden layers
    dead_fraction       relu: share of hidden units whose output is 0 for every
                        probe image, mean over the hidden layers (the callback
                        does not test leaky_relu or gelu: they are never exactly 0)

and, after training, the accuracy on the training split (the question is whether
the network can fit at all) and on the test split (in inference mode).

Files written to the output folder: results.csv (tidy rows), summary.md,
gradient_norm_by_depth.png (per activation, the gradient norm of each hidden
kernel against its layer at initialization, one line per network depth),
gradient_ratio.png (first/last ratio against depth, at initialization and after
training) and accuracy_by_depth.png (training accuracy against depth).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import os

import numpy as np

from kerasdl.studies import framework
from kerasdl.studies.framework import format_number

DESCRIPTION = (
    "sigmoid / tanh / softsign / ReLU / LeakyReLU / GELU MLPs 2-20 layers deep: "
    "vanishing gradients, saturation, dead units, trainability"
)

# Quotes are copied from the articles; " … " joins two passages of one article.
CLAIMS = [
    framework.Claim(
        key="sigmoid_vanishes",
        article="004_a2a657008e01d6d7.txt",
        quote="一般来说,Sigmoid网络在5层之内,就会产生梯度退化为0的现象,难以训练。"
        "这种现象称为梯度消失现象。",
        phrase="deep sigmoid networks lose the gradient in early layers and stop learning",
    ),
    framework.Claim(
        key="saturating_vanish",
        article="004_a2a657008e01d6d7.txt",
        quote="Sigmoid, tanh, softsign函数在训练深度神经网络的过程中,都无法回避梯度消失的问题,"
        "既在远离函数中心点的位置,函数导数趋于0,在网络非常深的时候,越来越多反向传播的梯度会落入饱和区,"
        "从而让梯度的模越来越小,最终趋近于0,导致权重无法更新。",
        phrase="sigmoid, tanh and softsign all suffer vanishing gradients in deep networks",
    ),
    framework.Claim(
        key="relu_keeps_gradients",
        article="004_a2a657008e01d6d7.txt",
        quote="RELU线性整流函数,又称修正线性单元ReLU,是一种人工神经网络中常用的激活函数,"
        "通常指代以斜坡函数及其变种为代表的非线性函数。当输入为正时,不存在梯度饱和问题。",
        phrase="ReLU keeps the gradient alive through deep networks, which then train",
    ),
    framework.Claim(
        key="leaky_relu_dead_units",
        article="004_a2a657008e01d6d7.txt",
        quote="LeakyRelu用于解决Dead ReLU问题的激活函数:针对Relu函数中存在的Dead Relu Problem,"
        "Leaky Relu函数在输入为负值时,给予输入值一个很小的斜率,"
        "在解决了负输入情况下的0梯度问题的基础上,也很好的缓解了Dead Relu问题",
        phrase="ReLU networks have dead units; LeakyReLU relieves the problem",
    ),
    framework.Claim(
        key="softsign_beats_tanh",
        article="004_a2a657008e01d6d7.txt",
        quote="其更平坦的曲线与更慢的下降导数表明它可以更高效地学习,比tTanh函数更好的解决梯度消失的问题。",
        phrase="softsign suffers less from vanishing gradients than tanh",
    ),
    framework.Claim(
        key="vanishing_grows_with_depth",
        article="001_2665fda0b36d1909.txt",
        quote="深度模型有关数值稳定性的典型问题是消失(vanishing)和爆炸(explosion)。",
        phrase="the deeper the model, the more the gradient vanishes (sigmoid)",
    ),
    framework.Claim(
        key="activation_problem",
        article="002_63dcdd9d2821722c.txt",
        quote="梯度消失梯度爆炸问题 … 激活函数问题",
        phrase="vanishing gradients are an activation-function problem: at the same "
        "depth the sigmoid network's gradient vanishes, the ReLU family's does not",
    ),
]
_CLAIM = {claim.key: claim for claim in CLAIMS}

ACTIVATIONS = ("sigmoid", "tanh", "softsign", "relu", "leaky_relu", "gelu")
SATURATING = ("sigmoid", "tanh", "softsign")
RELU_FAMILY = ("relu", "leaky_relu", "gelu")
LABELS = {
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softsign": "softsign",
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU (0.2)",
    "gelu": "GELU",
}

# Verdict thresholds (each verdict's rule states the ones it uses).
VANISHED = 1e-2  # first/last gradient ratio below this: the gradient has vanished
ALIVE = (0.1, 10.0)  # first/last ratio within this: the gradient arrives intact
FAR_BELOW = 0.3  # training accuracy this much below ReLU's: "stopped learning"
TRAINS = 0.9  # training accuracy that counts as "the network trains"
DEAD = 0.01  # mean dead-unit fraction that counts as "has dead units"
CLOSE = 0.01  # accuracy difference within this: "no worse"; beyond it: "better"
CLOSER = 2.0  # a ratio this many times closer to 1 counts as "vanishes less"
DEPTH_FALL = 1e-2  # deepest / shallowest ratio below this: vanishes with depth

FIGURE_NORMS = "gradient_norm_by_depth.png"
FIGURE_RATIO = "gradient_ratio.png"
FIGURE_ACCURACY = "accuracy_by_depth.png"


@dataclasses.dataclass(frozen=True)
class ActivationsStudyConfig:
    """Every hyperparameter of the study."""

    seed: int = 0
    activations: tuple[str, ...] = ACTIVATIONS
    depths: tuple[int, ...] = (2, 5, 10, 20)
    width: int = 64
    # Each activation's usual initializer (kernels of all dense layers).
    saturating_initializer: str = "glorot_normal"
    rectifier_initializer: str = "he_normal"
    # Training: the same for every network.
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 0.003
    momentum: float = 0.9
    # Data: the training split (1,259 images) cut to whole batches, 39 x 32.
    train_size: int = 1248
    probe_size: int = 256

    def __post_init__(self):
        if self.train_size % self.batch_size:
            raise ValueError(
                "`train_size` must be a multiple of `batch_size` (an epoch is whole "
                f"batches). Received: train_size={self.train_size}, "
                f"batch_size={self.batch_size}"
            )

    def initializer(self, activation: str) -> str:
        if activation in SATURATING:
            return self.saturating_initializer
        return self.rectifier_initializer


QUICK = ActivationsStudyConfig(
    activations=("sigmoid", "relu"),
    depths=(2, 10),
    epochs=1,
    train_size=256,
    probe_size=64,
)


# Data ----------------------------------------------------------------------------


def load_digit_features(train_size: int | None = None) -> dict:
    """{"train" | "test": (features (n, 64) float32, labels (n,) int32)}.

    sklearn's digits on kerasdl.data's fixed splits (the first `train_size`
    training images), each pixel standardized with the training images' mean and
    standard deviation (pixels that are constant there are only centred).
    """
    from kerasdl.data import embedded_images

    images, labels = embedded_images.load_digits_arrays()
    features = images.reshape(len(images), -1)  # (1797, 64)
    train, _, test = embedded_images.split_indices("digits")
    train = train[:train_size]
    mean = features[train].mean(axis=0)
    std = features[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    standardized = ((features - mean) / std).astype("float32")
    return {
        "train": (standardized[train], labels[train]),
        "test": (standardized[test], labels[test]),
    }


def probe_batch(train: tuple, size: int, seed: int) -> tuple:
    """`size` training examples drawn once with `seed`: the fixed probe batch."""
    x, y = train
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(x), size=min(size, len(x)), replace=False))
    return x[index], y[index]


# Measurement ---------------------------------------------------------------------


class _RetracingFilter(logging.Filter):
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def quiet_retracing_warnings():
    """Drops TensorFlow's "triggered tf.function retracing" warnings meanwhile.

    Every network a study trains is a new model with its own compiled functions,
    traced once each; TensorFlow counts those first traces and warns about
    "retracing" after a handful. Other TensorFlow messages still come through.
    """
    logger = logging.getLogger("tensorflow")
    quiet = _RetracingFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def probe_before_training(statistics, model) -> dict:
    """Runs a `GradientStatistics` probe on `model` as it is now (before `fit`).

    The callback probes at epoch ends; calling its hooks as `fit` would, with
    epoch -1, gives the record of the initial weights. `fit` then starts the
    callback's history afresh.
    """
    statistics.set_model(model)
    statistics.on_train_begin()
    statistics.on_epoch_end(-1)
    if len(statistics.history) != 1:
        raise RuntimeError(
            "GradientStatistics did not probe at on_epoch_end(-1); the study needs "
            "a probe of the initial weights."
        )
    return statistics.history[-1]


def hidden_kernel_norms(record: dict, depth: int) -> list[float]:
    """Gradient norms of `hidden_1/kernel` .. `hidden_{depth}/kernel` in a record."""
    return [record["gradient_norms"][f"hidden_{k}/kernel"] for k in range(1, depth + 1)]


def mean_layer_statistic(record: dict, depth: int, statistic: str) -> float | None:
    """Mean over the hidden activation layers of a callback statistic (None if n/a)."""
    values = [
        record["layers"][f"activation_{k}"][statistic] for k in range(1, depth + 1)
    ]
    if any(v is None for v in values):
        return None
    return float(np.mean(values))


def train_network(config, data, activation: str, depth: int) -> dict:
    """Trains one MLP; returns its initial and final probe records and accuracies."""
    import keras

    import kerasdl

    keras.utils.set_random_seed(config.seed)
    x_train, y_train = data["train"]
    model = kerasdl.models.get_model(
        "mlp",
        x_train.shape[1:],  # input shape
        10,  # classes
        depth=depth,
        width=config.width,
        activation=activation,
        initializer=config.initializer(activation),
    )
    model.compile(
        optimizer=keras.optimizers.SGD(config.learning_rate, momentum=config.momentum),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # One compiled call per epoch (the training set is whole batches): the same
        # updates as step by step, without a Python round trip per step.
        steps_per_execution=len(x_train) // config.batch_size,
    )
    statistics = kerasdl.callbacks.GradientStatistics(
        probe_data=probe_batch(data["train"], config.probe_size, config.seed),
        every_n_epochs=config.epochs,  # once, at the end of training
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
    trained = statistics.history[-1]
    evaluation = {
        split: model.evaluate(
            *data[split], batch_size=len(data[split][0]), verbose=0, return_dict=True
        )
        for split in ("train", "test")
    }
    return {"init": initial, "trained": trained, "evaluation": evaluation}


def measure(config: ActivationsStudyConfig) -> framework.Results:
    """Trains every (activation, depth) network; returns the tidy results."""
    data = load_digit_features(config.train_size)
    results = framework.Results()
    for activation in config.activations:
        for depth in config.depths:
            with quiet_retracing_warnings():
                run = train_network(config, data, activation, depth)
            where = {"activation": activation, "depth": depth}
            for phase in ("init", "trained"):
                record = run[phase]
                norms = hidden_kernel_norms(record, depth)
                for k, norm in enumerate(norms, start=1):
                    results.add("gradient_norm", norm, **where, phase=phase, layer=k)
                results.add(
                    "gradient_ratio",
                    framework.ratio(norms[0], norms[-1]),
                    **where,
                    phase=phase,
                )
                for statistic in ("saturated", "dead"):
                    value = mean_layer_statistic(record, depth, statistic)
                    if value is not None:
                        results.add(
                            f"{statistic}_fraction", value, **where, phase=phase
                        )
            for split in ("train", "test"):
                results.add(
                    f"{split}_accuracy", run["evaluation"][split]["accuracy"], **where
                )
                results.add(f"{split}_loss", run["evaluation"][split]["loss"], **where)
    return results


# Verdicts ------------------------------------------------------------------------


def _depths(results) -> list[int]:
    return sorted({row["depth"] for row in results.rows if "depth" in row})


def _missing(*values) -> bool:
    return any(math.isnan(v) for v in values)


def _not_measured(key, rule, figure=None):
    return framework.not_measured(_CLAIM[key], rule, figure)


def judge(results: framework.Results) -> list[framework.Verdict]:
    """The verdict on every claim, from the results alone."""
    return [
        _judge_sigmoid_vanishes(results),
        _judge_saturating_vanish(results),
        _judge_relu_keeps_gradients(results),
        _judge_leaky_relu(results),
        _judge_softsign(results),
        _judge_depth(results),
        _judge_activation_problem(results),
    ]


def _judge_sigmoid_vanishes(results):
    depth = 10
    rule = (
        f"holds if at depth {depth} sigmoid's first/last gradient ratio at "
        f"initialization is < {VANISHED:g} and its training accuracy is at least "
        f"{FAR_BELOW:g} below ReLU's; partly if only one of the two"
    )
    ratio = results.get(
        "gradient_ratio", activation="sigmoid", depth=depth, phase="init"
    )
    sigmoid = results.get("train_accuracy", activation="sigmoid", depth=depth)
    relu = results.get("train_accuracy", activation="relu", depth=depth)
    if _missing(ratio, sigmoid, relu):
        return _not_measured("sigmoid_vanishes", rule, FIGURE_NORMS)
    vanished = ratio < VANISHED
    stopped = sigmoid <= relu - FAR_BELOW
    measured = {
        f"sigmoid ratio at depth {depth}": ratio,
        "sigmoid training accuracy": sigmoid,
        "ReLU's": relu,
    }
    shallow = results.get("gradient_ratio", activation="sigmoid", depth=5, phase="init")
    if not math.isnan(shallow):
        measured["sigmoid ratio at depth 5"] = shallow
    saturated = results.get(
        "saturated_fraction", activation="sigmoid", depth=depth, phase="init"
    )
    if not math.isnan(saturated):
        measured["saturated fraction"] = saturated
    return framework.Verdict(
        _CLAIM["sigmoid_vanishes"],
        framework.verdict(vanished and stopped, partly=vanished or stopped),
        framework.measured(measured),
        rule,
        FIGURE_NORMS,
    )


def _judge_saturating_vanish(results):
    depths = _depths(results)
    depth = max(depths) if depths else 20
    rule = (
        f"at the deepest depth measured ({depth}), an activation vanishes if its "
        f"first/last gradient ratio at initialization is < {VANISHED:g}; holds if "
        "sigmoid, tanh and softsign all vanish, partly if one or two do"
    )
    ratios = {
        a: results.get("gradient_ratio", activation=a, depth=depth, phase="init")
        for a in SATURATING
    }
    if _missing(*ratios.values()):
        return _not_measured("saturating_vanish", rule, FIGURE_RATIO)
    vanished = [a for a, r in ratios.items() if r < VANISHED]
    measured = {f"{a} ratio": r for a, r in ratios.items()}
    for what, metric, extra in (
        ("training accuracy", "train_accuracy", {}),
        ("saturated fraction", "saturated_fraction", {"phase": "init"}),
    ):
        for a in SATURATING:
            value = results.get(metric, activation=a, depth=depth, **extra)
            if not math.isnan(value):
                measured[f"{a} {what}"] = value
    return framework.Verdict(
        _CLAIM["saturating_vanish"],
        framework.verdict(len(vanished) == len(SATURATING), partly=bool(vanished)),
        f"at depth {depth}: " + framework.measured(measured),
        rule,
        FIGURE_RATIO,
    )


def _judge_relu_keeps_gradients(results):
    deep = [d for d in _depths(results) if d >= 5]
    low, high = ALIVE
    rule = (
        f"holds if ReLU's first/last gradient ratio lies in [{low:g}, {high:g}] at "
        "every depth >= 5, before and after training, and its training accuracy at "
        f"the deepest depth is >= {TRAINS:g}; partly if only one of the two"
    )
    if not deep:
        return _not_measured("relu_keeps_gradients", rule, FIGURE_RATIO)
    ratios = {
        (d, phase): results.get(
            "gradient_ratio", activation="relu", depth=d, phase=phase
        )
        for d in deep
        for phase in ("init", "trained")
    }
    accuracy = results.get("train_accuracy", activation="relu", depth=max(deep))
    if _missing(accuracy, *ratios.values()):
        return _not_measured("relu_keeps_gradients", rule, FIGURE_RATIO)
    alive = all(low <= r <= high for r in ratios.values())
    trains = accuracy >= TRAINS
    measured = {f"ratio at depth {d} ({p})": r for (d, p), r in ratios.items()}
    measured[f"training accuracy at depth {max(deep)}"] = accuracy
    return framework.Verdict(
        _CLAIM["relu_keeps_gradients"],
        framework.verdict(alive and trains, partly=alive or trains),
        framework.measured(measured),
        rule,
        FIGURE_RATIO,
    )


def _judge_leaky_relu(results):
    rule = (
        "ReLU has dead units if its mean dead-unit fraction after training is >= "
        f"{DEAD:g} at some depth; holds if it has them and, at the depth with the "
        f"most, LeakyReLU's training accuracy is more than {CLOSE:g} above ReLU's; "
        "partly if ReLU "
        "has dead units but LeakyReLU does not train better; does not hold if no "
        "dead units appear (nothing to relieve)"
    )
    dead = {
        d: results.get("dead_fraction", activation="relu", depth=d, phase="trained")
        for d in _depths(results)
    }
    dead = {d: v for d, v in dead.items() if not math.isnan(v)}
    if not dead:
        return _not_measured("leaky_relu_dead_units", rule, FIGURE_ACCURACY)
    worst = max(dead, key=dead.get)
    relu = results.get("train_accuracy", activation="relu", depth=worst)
    leaky = results.get("train_accuracy", activation="leaky_relu", depth=worst)
    has_dead = dead[worst] >= DEAD
    measured = {f"ReLU dead fraction at depth {d}": v for d, v in dead.items()}
    if _missing(relu, leaky):
        return framework.Verdict(
            _CLAIM["leaky_relu_dead_units"],
            framework.verdict(False, partly=has_dead),
            framework.measured(measured) + "; LeakyReLU not measured",
            rule,
            FIGURE_ACCURACY,
        )
    measured[f"training accuracy at depth {worst}: ReLU"] = relu
    measured["LeakyReLU"] = leaky
    return framework.Verdict(
        _CLAIM["leaky_relu_dead_units"],
        framework.verdict(has_dead and leaky > relu + CLOSE, partly=has_dead),
        framework.measured(measured),
        rule,
        FIGURE_ACCURACY,
    )


def _judge_softsign(results):
    depths = _depths(results)
    depth = max(depths) if depths else 20
    rule = (
        f"at the deepest depth measured ({depth}): holds if softsign's first/last "
        f"gradient ratio at initialization is at least {CLOSER:g} times closer to 1 "
        "than tanh's (on a log scale) and its training accuracy is no more than "
        f"{CLOSE:g} below tanh's; partly if only one of the two"
    )
    values = {
        f"{a} {what}": results.get(metric, activation=a, depth=depth, **extra)
        for a in ("softsign", "tanh")
        for what, metric, extra in (
            ("ratio", "gradient_ratio", {"phase": "init"}),
            ("training accuracy", "train_accuracy", {}),
        )
    }
    if _missing(*values.values()):
        return _not_measured("softsign_beats_tanh", rule, FIGURE_RATIO)
    closer = abs(math.log10(values["softsign ratio"])) + math.log10(CLOSER) <= abs(
        math.log10(values["tanh ratio"])
    )
    no_worse = values["softsign training accuracy"] >= (
        values["tanh training accuracy"] - CLOSE
    )
    return framework.Verdict(
        _CLAIM["softsign_beats_tanh"],
        framework.verdict(closer and no_worse, partly=closer or no_worse),
        f"at depth {depth}: " + framework.measured(values),
        rule,
        FIGURE_RATIO,
    )


def _judge_depth(results):
    rule = (
        "holds if sigmoid's first/last gradient ratio at initialization falls with "
        "every added depth and the deepest network's is < "
        f"{DEPTH_FALL:g} times the shallowest's; partly if the deepest's is below "
        "the shallowest's but not both"
    )
    ratios = {
        d: results.get("gradient_ratio", activation="sigmoid", depth=d, phase="init")
        for d in _depths(results)
    }
    ratios = {d: r for d, r in ratios.items() if not math.isnan(r)}
    if len(ratios) < 2:
        return _not_measured("vanishing_grows_with_depth", rule, FIGURE_NORMS)
    values = [ratios[d] for d in sorted(ratios)]
    falling = all(b < a for a, b in itertools.pairwise(values))
    fall = values[-1] / values[0] if values[0] else math.nan
    explosions = [
        row["value"]
        for row in results.select("gradient_ratio", phase="init")
        if row["value"] > ALIVE[1]
    ]
    measured = framework.measured(
        {f"sigmoid ratio at depth {d}": r for d, r in ratios.items()}
    )
    measured += "; " + (
        f"explosion (ratio > {ALIVE[1]:g}) in {len(explosions)} networks, "
        f"largest {format_number(max(explosions))}"
        if explosions
        else f"no network's ratio above {ALIVE[1]:g} (no explosion)"
    )
    return framework.Verdict(
        _CLAIM["vanishing_grows_with_depth"],
        framework.verdict(falling and fall < DEPTH_FALL, partly=values[-1] < values[0]),
        measured,
        rule,
        FIGURE_NORMS,
    )


def _judge_activation_problem(results):
    deep = [d for d in _depths(results) if d >= 10]
    low = ALIVE[0]
    rule = (
        f"at every depth >= 10: holds if sigmoid's first/last gradient ratio at "
        f"initialization is < {VANISHED:g} while ReLU's, LeakyReLU's and GELU's are "
        f">= {low:g}; partly if sigmoid's vanishes but not all of the ReLU family's "
        "stay"
    )
    values = {
        (a, d): results.get("gradient_ratio", activation=a, depth=d, phase="init")
        for a in ("sigmoid", *RELU_FAMILY)
        for d in deep
    }
    if not deep or _missing(*values.values()):
        return _not_measured("activation_problem", rule, FIGURE_RATIO)
    sigmoid = all(values["sigmoid", d] < VANISHED for d in deep)
    family = all(values[a, d] >= low for a in RELU_FAMILY for d in deep)
    return framework.Verdict(
        _CLAIM["activation_problem"],
        framework.verdict(sigmoid and family, partly=sigmoid),
        framework.measured(
            {f"{a} ratio at depth {d}": v for (a, d), v in values.items()}
        ),
        rule,
        FIGURE_RATIO,
    )


# Figures -------------------------------------------------------------------------


def _figure(rows, columns, width=4.0, height=3.2, sharey=False):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * columns, height * rows))
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, columns, squeeze=False, sharey=sharey)


def _positive(values):
    """NaN for values a log axis cannot show."""
    return [v if v > 0 and math.isfinite(v) else math.nan for v in values]


def draw_figures(results: framework.Results, output) -> list[str]:
    """Draws the three figures from the results; returns their file names."""
    os.makedirs(output, exist_ok=True)
    activations = [
        a for a in ACTIVATIONS if results.select("train_accuracy", activation=a)
    ]
    depths = _depths(results)

    # Gradient norm of each hidden kernel against its layer, at initialization.
    columns = min(3, len(activations))
    rows = math.ceil(len(activations) / columns)
    # One y scale for all panels, so that the activations compare at a glance.
    figure, axes = _figure(rows, columns, sharey=True)
    for axis, activation in zip(axes.flat, activations):
        for depth in depths:
            norms = results.values(
                "gradient_norm",
                by="layer",
                activation=activation,
                depth=depth,
                phase="init",
            )
            layers = sorted(norms)
            axis.plot(
                layers,
                _positive([norms[k] for k in layers]),
                marker="o",
                markersize=3,
                label=f"depth {depth}",
            )
        axis.set_yscale("log")
        axis.set_title(LABELS[activation])
        axis.set_xlabel("hidden layer (1 = next to the input)")
        axis.set_ylabel("||dL/dW|| at initialization")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(activations) :]:
        axis.set_visible(False)
    figure.suptitle("Gradient norm of each hidden kernel before training (probe batch)")
    figure.tight_layout()
    figure.savefig(os.path.join(output, FIGURE_NORMS), dpi=100)

    # First/last gradient ratio against depth.
    figure, axes = _figure(1, 1, width=6.5, height=4.5)
    axis = axes[0, 0]
    for index, activation in enumerate(activations):
        color = f"C{index}"
        for phase, style in (("init", "-"), ("trained", "--")):
            ratios = results.values(
                "gradient_ratio", by="depth", activation=activation, phase=phase
            )
            axis.plot(
                depths,
                _positive([ratios.get(d, math.nan) for d in depths]),
                style,
                marker="o",
                color=color,
                label=f"{LABELS[activation]} ({'before' if phase == 'init' else 'after'})",
            )
    axis.axhline(VANISHED, color="grey", linewidth=0.8, linestyle=":")
    axis.set_yscale("log")
    axis.set_xticks(depths)
    axis.set_xlabel("hidden layers")
    axis.set_ylabel("||dL/dW_first|| / ||dL/dW_last||")
    axis.set_title(
        "Gradient reaching the first layer (solid: before, dashed: after training)"
    )
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(os.path.join(output, FIGURE_RATIO), dpi=100)

    # Training accuracy against depth.
    figure, axes = _figure(1, 1, width=6.5, height=4.5)
    axis = axes[0, 0]
    for activation in activations:
        accuracy = results.values("train_accuracy", by="depth", activation=activation)
        axis.plot(
            depths,
            [accuracy.get(d, math.nan) for d in depths],
            marker="o",
            label=LABELS[activation],
        )
    axis.axhline(0.1, color="grey", linewidth=0.8, linestyle=":")
    axis.set_xticks(depths)
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("hidden layers")
    axis.set_ylabel("training accuracy after the epoch budget")
    axis.set_title("Can the network fit the training set? (dotted: chance)")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(os.path.join(output, FIGURE_ACCURACY), dpi=100)
    return [FIGURE_NORMS, FIGURE_RATIO, FIGURE_ACCURACY]


# Study ---------------------------------------------------------------------------


def run(output, quick: bool = False, seed: int = 0) -> framework.Report:
    """Trains the networks, draws the figures and judges the claims."""
    config = dataclasses.replace(
        QUICK if quick else ActivationsStudyConfig(), seed=seed
    )
    results = measure(config)
    figures = draw_figures(results, output)
    notes = (
        f"{len(config.activations)} activations x depths {list(config.depths)}, "
        f"{config.width} units per hidden layer; SGD (learning rate "
        f"{config.learning_rate:g}, momentum {config.momentum:g}), batch "
        f"{config.batch_size}, {config.epochs} epochs on {config.train_size} "
        "training images; {config.saturating_initializer} for sigmoid/tanh/softsign, "
        f"{config.rectifier_initializer} for the ReLU family; probe batch of "
        f"{config.probe_size} training images, seed {config.seed}. "
        "Gradient ratios are one probe batch and one seed each: read orders of "
        "magnitude, not digits. " + mechanism_note(results)
    )
    return framework.Report(results, judge(results), figures=figures, notes=notes)


def mechanism_note(results: framework.Results) -> str:
    """Whether saturation is what made sigmoid's gradient vanish, from the data."""
    depths = _depths(results)
    if not depths:
        return ""
    depth = max(depths)
    ratio = results.get(
        "gradient_ratio", activation="sigmoid", depth=depth, phase="init"
    )
    saturated = results.get(
        "saturated_fraction", activation="sigmoid", depth=depth, phase="init"
    )
    if _missing(ratio, saturated) or ratio >= VANISHED:
        return ""
    if saturated < 0.05:
        return (
            f"At depth {depth} sigmoid's gradient ratio is {format_number(ratio)} "
            f"while only {format_number(saturated)} of its hidden outputs are "
            "saturated (< 0.01 or > 0.99): the gradient vanishes because sigmoid's "
            "derivative is at most 0.25 in every layer, not because units saturate "
            "(the mechanism the 004 article gives)."
        )
    return (
        f"At depth {depth} {format_number(saturated)} of sigmoid's hidden outputs "
        "are saturated (< 0.01 or > 0.99)."
    )
