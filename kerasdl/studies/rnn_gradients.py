"""RNN gradients study: how far back through time does the gradient reach?

    kerasdl study rnn_gradients            # a few minutes on 2 shared CPU cores
    kerasdl study rnn_gradients --quick    # seconds; files only, no real verdicts

Three character-level language models on *The Time Machine* (kerasdl.data's
contiguous split, vocabulary of the training part), the same but for the cell:

    embedding (32) -> SimpleRNN | GRU | LSTM (128 units) -> dense (vocabulary)

(Keras' default initializers: Glorot-uniform input kernels, orthogonal recurrent
kernels, the LSTM's forget-gate bias at 1.) For a fixed probe batch of 32 windows
of 101 characters from the validation text, the loss is the cross-entropy of the
prediction at the last step T only, and the measure is

    g(k) = || d loss_T / d x_{T-k} ||,   k = 0 ... 100

the norm of its gradient with respect to the input at step T - k (the embedding
output, the RNN's input), averaged over the probe windows. A gradient that
"decays through time" falls exponentially with k; one that "explodes" grows.

Each cell is measured at initialization, then trained from those initial weights
twice, identically except for gradient clipping: Adam at learning rate 0.003
(the char_rnn recipes' optimizer), batch 32 of 64-character subsequences (random
sampling), 1,000 steps (about 13 passes over the training text), without
clipping and with Keras' `clipnorm=1.0` (every variable's gradient clipped to
norm 1, as the recipes do), and measured again after each. The norms are taken
in float64, so that squaring gradients below 1e-19 does not underflow to 0.
The default run makes TensorFlow's ops deterministic, so it repeats to the bit.

Files written to the output folder: results.csv (tidy rows: `gradient_norm` per
cell, condition and k; `log10_ratio` = log10(g(100) / g(1)) and `decay_per_step`,
the per-step factor of an exponential fitted to g(1..100); final training loss and
validation bits per character), summary.md, gradient_norm_by_distance.png (log g
against k, one panel per cell, one line per condition) and training_loss.png.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from kerasdl.studies import framework
from kerasdl.studies.framework import format_number

DESCRIPTION = (
    "SimpleRNN / GRU / LSTM char LMs: gradient of the last step's loss w.r.t. the "
    "input k = 1..100 steps back, before and after training, with and without clipping"
)

CLAIMS = [
    framework.Claim(
        key="decay_or_explode",
        article="001_2665fda0b36d1909.txt",
        quote="RNN存在的问题:梯度较容易出现衰减或爆炸(BPTT)",
        phrase="a plain RNN's gradient decays or explodes through time",
    ),
    framework.Claim(
        key="gates_long_range",
        article="001_2665fda0b36d1909.txt",
        quote="\u2ed4控循环神经\u2f79络:捕捉时间序列中时间步距离较\u2f24的依赖关系",
        phrase="gated cells (GRU, LSTM) carry the gradient over long distances",
    ),
]
_CLAIM = {claim.key: claim for claim in CLAIMS}

CELLS = ("simple_rnn", "gru", "lstm")
LABELS = {"simple_rnn": "SimpleRNN", "gru": "GRU", "lstm": "LSTM"}
CONDITIONS = ("init", "trained", "trained_clipped")
CONDITION_LABELS = {
    "init": "at initialization",
    "trained": "trained, no clipping",
    "trained_clipped": "trained, clipnorm",
}

# Verdict thresholds (each rule states the ones it uses).
DECADES = 2.0  # |log10 g(K)/g(1)| at least this: the gradient decayed/exploded
FARTHER = 1.0  # a gated cell keeps at least this many more decades than SimpleRNN

FIGURE_NORMS = "gradient_norm_by_distance.png"
FIGURE_LOSS = "training_loss.png"


@dataclasses.dataclass(frozen=True)
class RNNGradientsStudyConfig:
    """Every hyperparameter of the study."""

    seed: int = 0
    cells: tuple[str, ...] = CELLS
    embedding_dim: int = 32
    hidden_size: int = 128
    max_distance: int = 100  # k = 0 .. max_distance
    probe_size: int = 32  # probe windows of max_distance + 1 characters
    # Training: the same for every cell, with and without clipping.
    sequence_length: int = 64
    batch_size: int = 32
    steps: int = 1000
    steps_per_epoch: int = 100  # the loss curve's resolution
    learning_rate: float = 0.003
    clipnorm: float = 1.0

    def __post_init__(self):
        unknown = set(self.cells) - set(CELLS)
        if unknown:
            raise ValueError(
                f"cells must be among {CELLS}. Received: cells={self.cells}"
            )
        if self.steps % self.steps_per_epoch:
            raise ValueError(
                "`steps` must be a multiple of `steps_per_epoch`. Received: "
                f"steps={self.steps}, steps_per_epoch={self.steps_per_epoch}"
            )


QUICK = RNNGradientsStudyConfig(
    cells=("simple_rnn", "lstm"),
    embedding_dim=8,
    hidden_size=16,
    max_distance=20,
    probe_size=4,
    sequence_length=16,
    batch_size=8,
    steps=4,
    steps_per_epoch=2,
)


# Data ----------------------------------------------------------------------------


def load_data(config: RNNGradientsStudyConfig):
    """The book at character level and the fixed probe windows.

    Returns:
        `(dataset, probe_tokens, probe_targets)`: kerasdl's
        `LanguageModelingDataset`, int32 `(probe_size, max_distance + 1)` windows
        evenly spaced over the validation text and the character after each.
    """
    from kerasdl.data.timemachine import load_language_modeling_dataset

    data = load_language_modeling_dataset(
        level="char",
        sequence_length=config.sequence_length,
        batch_size=config.batch_size,
        sampling="random",
        seed=config.seed,
    )
    length = config.max_distance + 1
    ids = data.validation_ids
    starts = np.linspace(0, len(ids) - length - 1, config.probe_size).astype(int)
    tokens = np.stack([ids[s : s + length] for s in starts])
    targets = ids[starts + length]
    return data, tokens, targets


# Measurement ---------------------------------------------------------------------


def build_model(config, cell: str, vocabulary_size: int):
    """embedding -> recurrent cell (all steps) -> dense logits."""
    import keras

    recurrent = {
        "simple_rnn": keras.layers.SimpleRNN,
        "gru": keras.layers.GRU,
        "lstm": keras.layers.LSTM,
    }[cell]
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(vocabulary_size, config.embedding_dim, name="embed"),
            recurrent(config.hidden_size, return_sequences=True, name=cell),
            keras.layers.Dense(vocabulary_size, name="logits"),
        ],
        name=f"char_{cell}",
    )


def input_gradient_norms(model, tokens, targets) -> np.ndarray:
    """`g(k)`, k = 0 .. length - 1: mean over the windows of ||d loss_T / d x_{T-k}||.

    `loss_T` is each window's cross-entropy at its last step only; the windows'
    losses are summed, so each window's gradient is its own.
    """
    import keras
    import tensorflow as tf

    embed, recurrent, head = model.layers

    @tf.function
    def norms(tokens, targets):
        with tf.GradientTape() as tape:
            inputs = embed(tokens)  # (batch, T, embedding_dim)
            tape.watch(inputs)
            last = recurrent(inputs)[:, -1]  # (batch, hidden)
            loss = keras.losses.sparse_categorical_crossentropy(
                targets, head(last), from_logits=True
            )  # (batch,)
            total = tf.reduce_sum(loss)
        gradient = tape.gradient(total, inputs)  # (batch, T, embedding_dim)
        return tf.norm(tf.cast(gradient, tf.float64), axis=-1)  # (batch, T)

    per_window = norms(tf.constant(tokens), tf.constant(targets)).numpy()
    return per_window.mean(axis=0)[::-1]  # index k: step T - k


def train(config, model, data, clipnorm):
    """Adam on the training text; returns the loss per epoch and validation."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(
        data.train.repeat(),
        epochs=config.steps // config.steps_per_epoch,
        steps_per_epoch=config.steps_per_epoch,
        shuffle=False,  # the dataset shuffles itself
        verbose=0,
    )
    validation = model.evaluate(data.validation, verbose=0)
    return history.history["loss"], float(validation)


def measure(
    config: RNNGradientsStudyConfig, deterministic: bool = True
) -> framework.Results:
    """Measures every cell at initialization and after both trainings.

    With `deterministic`, TensorFlow's ops run deterministically (for the whole
    process): 1,000 Adam steps amplify the float rounding of multi-threaded
    reductions, and two otherwise identical runs gave the GRU -8.0 and -14.7
    decades; deterministic runs repeat to the bit.
    """
    import keras

    from kerasdl.studies.activations import quiet_retracing_warnings
    from kerasdl.training.reproducibility import set_seed

    set_seed(config.seed, deterministic=deterministic)

    data, tokens, targets = load_data(config)
    results = framework.Results()
    vocabulary_size = data.vocabulary.size
    for cell in config.cells:
        keras.utils.set_random_seed(config.seed)
        model = build_model(config, cell, vocabulary_size)
        initial_weights = model.get_weights()
        with quiet_retracing_warnings():
            norms = {"init": input_gradient_norms(model, tokens, targets)}
            for condition, clipnorm in (
                ("trained", None),
                ("trained_clipped", config.clipnorm),
            ):
                keras.utils.set_random_seed(config.seed)
                model = build_model(config, cell, vocabulary_size)
                model.set_weights(initial_weights)
                losses, validation = train(config, model, data, clipnorm)
                norms[condition] = input_gradient_norms(model, tokens, targets)
                for epoch, loss in enumerate(losses, start=1):
                    step = epoch * config.steps_per_epoch
                    results.add(
                        "train_loss", loss, cell=cell, condition=condition, step=step
                    )
                results.add(
                    "validation_bits_per_char",
                    validation / math.log(2),
                    cell=cell,
                    condition=condition,
                )
        for condition, values in norms.items():
            where = {"cell": cell, "condition": condition}
            for k, value in enumerate(values):
                results.add("gradient_norm", value, **where, k=k)
            log_ratio, per_step = decay_summary(values)
            results.add("log10_ratio", log_ratio, **where)
            results.add("decay_per_step", per_step, **where)
    return results


def decay_summary(norms) -> tuple[float, float]:
    """`(log10(g(K) / g(1)), per-step factor)` of a gradient-norm curve g(0..K).

    The factor is `10 ** slope` of a least-squares line through `log10 g(k)`,
    k = 1..K (< 1: decays, > 1: grows). Norms that underflowed to 0 count as
    1e-45, the smallest float32; NaN (a diverged model) gives NaN.
    """
    norms = np.asarray(norms, dtype=float)[1:]
    if not np.all(np.isfinite(norms)):
        return math.nan, math.nan
    logs = np.log10(np.maximum(norms, 1e-45))
    slope = np.polyfit(np.arange(1, len(logs) + 1), logs, 1)[0]
    return float(logs[-1] - logs[0]), float(10**slope)


# Verdicts ------------------------------------------------------------------------


def _distance(results) -> int:
    ks = [row["k"] for row in results.select("gradient_norm")]
    return max(ks) if ks else 100


def judge(results: framework.Results) -> list[framework.Verdict]:
    """The verdict on every claim, from the results alone."""
    return [_judge_decay_or_explode(results), _judge_gates(results)]


def _judge_decay_or_explode(results):
    distance = _distance(results)
    rule = (
        f"SimpleRNN's gradient decayed or exploded in a condition if "
        f"abs(log10(g({distance}) / g(1))) >= {DECADES:g}; holds if it did in every "
        "measured condition (initialization, trained without and with clipping), "
        "partly if in some"
    )
    ratios = {
        c: results.get("log10_ratio", cell="simple_rnn", condition=c)
        for c in CONDITIONS
    }
    measured_ratios = {c: r for c, r in ratios.items() if not math.isnan(r)}
    if not measured_ratios:
        return framework.not_measured(_CLAIM["decay_or_explode"], rule, FIGURE_NORMS)
    changed = [c for c, r in measured_ratios.items() if abs(r) >= DECADES]
    measured = ", ".join(
        f"{CONDITION_LABELS[c]} {format_number(r)} decades "
        f"(x{format_number(results.get('decay_per_step', cell='simple_rnn', condition=c))}"
        " per step)"
        for c, r in measured_ratios.items()
    )
    diverged = [c for c, r in ratios.items() if math.isnan(r)]
    if diverged:
        measured += "; diverged (NaN): " + ", ".join(diverged)
    return framework.Verdict(
        _CLAIM["decay_or_explode"],
        framework.verdict(
            len(changed) == len(CONDITIONS), partly=bool(changed) or bool(diverged)
        ),
        f"SimpleRNN log10 g({distance})/g(1): " + measured,
        rule,
        FIGURE_NORMS,
    )


def _judge_gates(results):
    distance = _distance(results)
    condition = "trained_clipped"
    rule = (
        f"after training with clipping, a gated cell carries the gradient farther if "
        f"its log10(g({distance}) / g(1)) exceeds SimpleRNN's by >= {FARTHER:g} "
        f"decade without exploding (<= {DECADES:g}); holds if GRU and LSTM both "
        "do, partly if one does"
    )
    values = {
        cell: results.get("log10_ratio", cell=cell, condition=condition)
        for cell in CELLS
    }
    if any(math.isnan(v) for v in values.values()):
        return framework.not_measured(_CLAIM["gates_long_range"], rule, FIGURE_NORMS)
    farther = [
        cell
        for cell in ("gru", "lstm")
        if values[cell] - values["simple_rnn"] >= FARTHER and values[cell] <= DECADES
    ]
    measured = (
        ", ".join(f"{LABELS[c]} {format_number(v)}" for c, v in values.items())
        + " decades after clipped training"
    )
    initial = {
        cell: results.get("log10_ratio", cell=cell, condition="init") for cell in CELLS
    }
    if not any(math.isnan(v) for v in initial.values()):
        measured += "; at initialization " + ", ".join(
            f"{LABELS[c]} {format_number(v)}" for c, v in initial.items()
        )
    return framework.Verdict(
        _CLAIM["gates_long_range"],
        framework.verdict(len(farther) == 2, partly=len(farther) == 1),
        measured,
        rule,
        FIGURE_NORMS,
    )


# Figures -------------------------------------------------------------------------


def _figure(columns, width=4.2, height=3.4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * columns, height))
    FigureCanvasAgg(figure)
    return figure, figure.subplots(1, columns, squeeze=False, sharey=True)[0]


def draw_figures(results: framework.Results, output) -> list[str]:
    """Draws the two figures from the results; returns their file names."""
    os.makedirs(output, exist_ok=True)
    cells = [c for c in CELLS if results.select("gradient_norm", cell=c)]

    # Gradient norm against distance, one panel per cell.
    figure, axes = _figure(len(cells))
    for axis, cell in zip(axes, cells):
        for condition in CONDITIONS:
            norms = results.values(
                "gradient_norm", by="k", cell=cell, condition=condition
            )
            ks = sorted(k for k in norms if k >= 1)
            values = [norms[k] for k in ks]
            values = [v if v > 0 and math.isfinite(v) else math.nan for v in values]
            axis.plot(ks, values, label=CONDITION_LABELS[condition])
        axis.set_yscale("log")
        axis.set_title(LABELS[cell])
        axis.set_xlabel("k (steps back from the last step T)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    axes[0].set_ylabel("||d loss_T / d x_(T-k)||")
    figure.suptitle("Gradient of the last step's loss w.r.t. earlier inputs")
    framework.save_figure(figure, output, FIGURE_NORMS)

    # Training loss of both trainings.
    figure, axes = _figure(1, width=6.0, height=4.0)
    axis = axes[0]
    for index, cell in enumerate(cells):
        for condition, style in (("trained", "--"), ("trained_clipped", "-")):
            losses = results.values(
                "train_loss", by="step", cell=cell, condition=condition
            )
            steps = sorted(losses)
            axis.plot(
                steps,
                [losses[s] for s in steps],
                style,
                color=f"C{index}",
                label=f"{LABELS[cell]}, {CONDITION_LABELS[condition]}",
            )
    axis.set_xlabel("training step")
    axis.set_ylabel("training loss (nats per character)")
    axis.set_title("Training (dashed: no clipping, solid: clipnorm)")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7)
    framework.save_figure(figure, output, FIGURE_LOSS)
    return [FIGURE_NORMS, FIGURE_LOSS]


# Study ---------------------------------------------------------------------------


def run(output, quick: bool = False, seed: int = 0) -> framework.Report:
    """Measures the cells, draws the figures and judges the claims."""
    config = dataclasses.replace(
        QUICK if quick else RNNGradientsStudyConfig(), seed=seed
    )
    # --quick runs inside test processes: leave their op determinism alone.
    results = measure(config, deterministic=not quick)
    figures = draw_figures(results, output)
    validation = ", ".join(
        f"{LABELS[cell]} {format_number(results_value)} / "
        f"{format_number(results.get('validation_bits_per_char', cell=cell, condition='trained_clipped'))}"
        for cell in config.cells
        for results_value in [
            results.get("validation_bits_per_char", cell=cell, condition="trained")
        ]
    )
    notes = (
        f"Cells {', '.join(LABELS[c] for c in config.cells)} with "
        f"{config.hidden_size} units after a {config.embedding_dim}-dimensional "
        f"embedding; probe: {config.probe_size} validation windows of "
        f"{config.max_distance + 1} characters, loss at the last step only. "
        f"Training: Adam (learning rate {config.learning_rate:g}), batch "
        f"{config.batch_size} x {config.sequence_length} characters, {config.steps} "
        f"steps, without clipping and with clipnorm={config.clipnorm:g}, from the same "
        f"initial weights, seed {config.seed}. Validation bits per character after "
        f"training (no clipping / clipnorm): {validation} (the 7-gram Kneser-Ney "
        "baseline: 2.109; this is a short training, not a tuned model). One probe "
        "batch and one seed: read orders of magnitude, not digits. "
        + training_note(results, config.cells)
    )
    return framework.Report(results, judge(results), figures=figures, notes=notes)


def training_note(results: framework.Results, cells) -> str:
    """What training and clipping did to each cell's reach, from the data."""
    parts = []
    for cell in cells:
        values = [
            results.get("log10_ratio", cell=cell, condition=c) for c in CONDITIONS
        ]
        if any(math.isnan(v) for v in values):
            continue
        parts.append(
            f"{LABELS[cell]} {format_number(values[0])} -> "
            f"{format_number(values[1])} (no clipping) / "
            f"{format_number(values[2])} (clipnorm)"
        )
    if not parts:
        return ""
    differences = [
        abs(
            results.get("validation_bits_per_char", cell=c, condition="trained")
            - results.get(
                "validation_bits_per_char", cell=c, condition="trained_clipped"
            )
        )
        for c in cells
    ]
    return (
        "Training moved log10 g(K)/g(1) (initialization -> trained): "
        + ", ".join(parts)
        + ". Clipping changed validation bits per character by at most "
        f"{format_number(max(differences))}."
    )
