"""Distribution-shift study: covariate, label and concept shift on 8x8 digits.

    kerasdl study distribution_shift           # 35 CPU-seconds (4 min wall at load 15 on 2 cores)
    kerasdl study distribution_shift --quick   # seconds; for tests

The classifier is kerasdl's "mlp" (two hidden layers of 128, softmax), trained with
Adam; the statistics around it are scikit-learn's.

Covariate shift (P(x) changes, P(y|x) does not). Source: scikit-learn's digits
(UCI optdigits: 32x32 bitmaps counted in 4x4 blocks, 8x8 values 0..16). Target:
the embedded MNIST test images (kerasdl.data "mnist8k") put through the same
reduction: crop to the digit's bounding box, pad to a square, resize to 32x32,
binarize at half intensity, count each 4x4 block. The target is split in two:
an unlabeled half (what a deployed model sees) and a labeled half to score on.
Measured: accuracy on source test vs target; then the standard correction,
importance weighting: a domain classifier (LogisticRegression, source vs
unlabeled target pixels) gives w(x) = p(target|x) / p(source|x) (times the size
ratio, clipped, mean 1), and the classifier is retrained on the source with
those sample weights. An oracle trained on labeled target images of the same
number bounds what any correction could recover.

Label shift (P(y) changes, P(x|y) does not). Source: MNIST-8x8 (the target above)
with its natural, nearly uniform class priors: a training split, a validation
split for the confusion matrix and a test pool. Target: test sets of 1,000 drawn
from the pool with priors from Dirichlet(α) (α = 1 and 0.1, 5 draws each).
Corrections: BBSE (Lipton, Wang & Smola 2018, "Detecting and Correcting for Label
Shift with Black Box Predictors"): solve C w = μ for the weights w = q(y)/p(y),
where C[i, j] = P(ŷ=i, y=j) on source validation and μ[i] = P(ŷ=i) on the
unlabeled target, then reweight the classifier's outputs p(y|x) w_y and
renormalize; compared with reweighting by the true w (oracle) and with
importance weighting by a domain classifier on the three most skewed sets.

Concept shift (P(y|x) changes): the source test set with two labels' meaning
swapped (4 <-> 9); asked whether unlabeled data reveal it (domain-classifier
AUC, BBSE's estimated priors) while accuracy falls.

Files written to --output (default runs/studies/distribution_shift/):
results.csv, covariate_shift.png, label_shift.png, summary.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from kerasdl.studies.framework import (
    Claim,
    Report,
    Results,
    Verdict,
    verdict,
)

DESCRIPTION = (
    "covariate shift (digits -> MNIST 8x8, importance weights), label shift "
    "(skewed priors, BBSE) and concept shift (swapped labels) on an MLP"
)


@dataclass
class DistributionShiftStudyConfig:
    """Every hyperparameter of the study."""

    seed: int = 0
    # Classifier.
    depth: int = 2
    width: int = 128
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    # Covariate shift: the domain classifier and its weights.
    domain_c: float = 1.0  # LogisticRegression's inverse regularization
    max_weight: float = 20.0  # importance weights clipped here (then mean 1)
    # Label shift.
    label_train_size: int = 4000
    label_validation_size: int = 2000
    shifted_test_size: int = 1000
    dirichlet_alphas: tuple[float, ...] = (1.0, 0.1)
    draws: int = 5
    iw_label_shift_sets: int = 3  # most skewed sets also corrected by IW
    # Concept shift: these two classes swap labels.
    swapped_classes: tuple[int, int] = (4, 9)


QUICK = {
    "epochs": 2,
    "label_train_size": 600,
    "label_validation_size": 300,
    "shifted_test_size": 300,
    "dirichlet_alphas": (0.1,),
    "draws": 2,
    "iw_label_shift_sets": 1,
}

CLAIMS = [
    Claim(
        "covariate_shift_hurts",
        "001_2665fda0b36d1909.txt",
        "显然,这不太可能奏效。训练集由照片组成,而测试集只包含卡通。"
        "在一个看起来与测试集有着本质不同的数据集上进行训练,而不考虑如何适应新的情况,"
        "这是不是一个好主意。不幸的是,这是一个非常常见的陷阱。",
        "a model trained on one look (digits) fails on another (MNIST 8x8)",
    ),
    Claim(
        "covariate_shift_correction",
        "001_2665fda0b36d1909.txt",
        "统计学家称这种协变量变化是因为问题的根源在于特征分布的变化(即协变量的变化)。"
        "数学上,我们可以说P(x)改变了,但P(y∣x)保持不变。",
        "if only P(x) changed, reweighting the source by p_target(x)/p_source(x) "
        "recovers target accuracy",
    ),
    Claim(
        "label_shift_correction",
        "001_2665fda0b36d1909.txt",
        "当我们认为导致偏移的是标签P(y)上的边缘分布的变化,但类条件分布是不变的P(x∣y)时,"
        "就会出现相反的问题。",
        "under label shift, estimating q(y) (BBSE) and reweighting the outputs "
        "recovers accuracy",
    ),
    Claim(
        "label_shift_methods_preferable",
        "001_2665fda0b36d1909.txt",
        "有趣的是,当我们期望标签偏移和协变量偏移保持时,使用来自标签偏移假设的方法通常是"
        "有利的。这是因为这些方法倾向于操作看起来像标签的对象,这(在深度学习中)与处理"
        "看起来像输入的对象(在深度学习中)相比相对容易一些。",
        "label-shift methods (on outputs) beat covariate-shift methods (on inputs)",
    ),
    Claim(
        "concept_shift_hard_to_detect",
        "001_2665fda0b36d1909.txt",
        "如果我们要建立一个机器翻译系统,分布P(y∣x)可能因我们的位置而异。这个问题很难发现。",
        "concept shift (P(y|x) changes) is hard to detect",
    ),
]
_CLAIMS = {claim.key: claim for claim in CLAIMS}

# Verdict thresholds (stated in each rule).
LARGE_DROP = 0.10  # accuracy drop that counts as "does not work"
SOME_DROP = 0.03
RECOVERY = 0.25  # fraction of the gap to the oracle a correction must recover
MIN_GAIN = 0.005  # accuracy gains below this are none
UNDETECTABLE_AUC = 0.6  # a domain classifier at most this good sees nothing
# L1 distance of BBSE's priors from the source priors: about the sampling noise of
# 10 priors estimated from ~270 examples (10 * sqrt(0.09 / 270) ~ 0.18).
PRIOR_ERROR = 0.15


# Data ----------------------------------------------------------------------------


def mnist_to_digits_grid(images) -> np.ndarray:
    """MNIST 28x28 uint8 -> the optdigits reduction, (n, 8, 8, 1) float32 in 0..16.

    Bounding box, square padding, 32x32 bilinear resize, binarize at 128, then the
    number of set pixels in each 4x4 block.
    """
    from PIL import Image

    images = np.asarray(images).reshape(-1, 28, 28)
    grids = np.zeros((len(images), 8, 8), "float32")
    for i, image in enumerate(images):
        rows, columns = np.nonzero(image > 0)
        if rows.size == 0:
            continue
        crop = image[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
        side = max(crop.shape)
        square = np.zeros((side, side), "uint8")
        top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
        square[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
        resized = np.asarray(
            Image.fromarray(square).resize((32, 32), Image.Resampling.BILINEAR)
        )
        bits = resized >= 128  # (32, 32)
        grids[i] = bits.reshape(8, 4, 8, 4).sum(axis=(1, 3))
    return grids[..., None]


def load_domains(seed: int) -> dict:
    """{"digits": (x, y), "mnist": (x, y)}: both (n, 8, 8, 1) float32 0..16."""
    from kerasdl.data import embedded_images

    digits = embedded_images.load_digits_arrays()
    images, labels = embedded_images.load_mnist8k_arrays()
    return {
        "digits": (np.asarray(digits[0]), np.asarray(digits[1])),
        "mnist": (mnist_to_digits_grid(images), np.asarray(labels)),
    }


def split(labels, sizes, seed):
    """Stratified, seeded index arrays of the given sizes (the rest is dropped)."""
    from sklearn.model_selection import train_test_split

    rest = np.arange(len(labels))
    parts = []
    for size in sizes:
        if size >= len(rest):
            parts.append(rest)
            rest = rest[:0]
            continue
        part, rest = train_test_split(
            rest, train_size=size, stratify=labels[rest], random_state=seed
        )
        parts.append(part)
    return parts


# Classifier ----------------------------------------------------------------------


def train_classifier(config, x, y, sample_weight=None, seed=None):
    """kerasdl's "mlp" on 8x8 images in 0..16, trained with Adam; returns the model."""
    import keras
    import tensorflow as tf

    import kerasdl
    from kerasdl.data.image_dataset import build_pipeline

    seed = config.seed if seed is None else seed
    keras.utils.set_random_seed(seed)
    model = kerasdl.models.get_model(
        "mlp", (8, 8, 1), 10, depth=config.depth, width=config.width, rescale=1 / 16
    )
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    tensors = (
        (x, y) if sample_weight is None else (x, y, sample_weight.astype("float32"))
    )
    dataset = build_pipeline(
        tf.data.Dataset.from_tensor_slices(tensors),
        batch_size=config.batch_size,
        training=True,
        num_examples=len(y),
        seed=seed,
    )
    model.fit(dataset, epochs=config.epochs, verbose=0)
    return model


def probabilities(model, x) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=1024, verbose=0), "float64")


def accuracy(p, y) -> float:
    return float(np.mean(np.argmax(p, axis=1) == y))


# Corrections ---------------------------------------------------------------------


def domain_classifier(source_x, target_x, c, seed):
    """LogisticRegression on pixels/16: source (0) vs target (1); returns it."""
    from sklearn.linear_model import LogisticRegression

    features = (
        np.concatenate([source_x, target_x]).reshape(len(source_x) + len(target_x), -1)
        / 16.0
    )
    domain = np.r_[np.zeros(len(source_x)), np.ones(len(target_x))]
    return LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(
        features, domain
    )


def domain_auc(source_x, target_x, c, seed) -> float:
    """Held-out ROC AUC of a domain classifier (2-fold): 0.5 means indistinguishable."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    features = (
        np.concatenate([source_x, target_x]).reshape(len(source_x) + len(target_x), -1)
        / 16.0
    )
    domain = np.r_[np.zeros(len(source_x)), np.ones(len(target_x))]
    scores = cross_val_score(
        LogisticRegression(C=c, max_iter=2000, random_state=seed),
        features,
        domain,
        cv=2,
        scoring="roc_auc",
    )
    return float(np.mean(scores))


def importance_weights(source_x, target_x, config) -> np.ndarray:
    """w(x) = p(target|x)/p(source|x) * n_source/n_target on the source, clipped, mean 1."""
    classifier = domain_classifier(source_x, target_x, config.domain_c, config.seed)
    p_target = classifier.predict_proba(source_x.reshape(len(source_x), -1) / 16.0)[
        :, 1
    ]
    p_target = np.clip(p_target, 1e-6, 1 - 1e-6)
    weights = p_target / (1 - p_target) * len(source_x) / len(target_x)
    weights = np.minimum(weights, config.max_weight)
    return weights / weights.mean()


def effective_sample_size(weights) -> float:
    """(sum w)^2 / sum w^2: how many equally weighted examples the weights are worth."""
    return float(weights.sum() ** 2 / np.sum(weights**2))


def confusion_joint(p, y, num_classes=10) -> np.ndarray:
    """C[i, j] = P(ŷ = i, y = j) on labeled source data (hard predictions)."""
    joint = np.zeros((num_classes, num_classes))
    np.add.at(joint, (np.argmax(p, axis=1), y), 1.0)
    return joint / len(y)


def bbse_weights(joint, target_p) -> np.ndarray:
    """BBSE: w = q(y)/p(y) from C w = μ (least squares, clipped at 0)."""
    mu = np.bincount(np.argmax(target_p, axis=1), minlength=joint.shape[0]) / len(
        target_p
    )
    w, *_ = np.linalg.lstsq(joint, mu, rcond=None)
    return np.maximum(w, 0.0)


def reweight(p, w) -> np.ndarray:
    """p(y|x) w_y, renormalized: the classifier adjusted to new class priors."""
    adjusted = p * w[None, :]
    total = adjusted.sum(axis=1, keepdims=True)
    return np.where(total > 0, adjusted / np.maximum(total, 1e-300), p)


def shifted_priors(config, rng) -> list:
    """[(name, alpha, priors)]: Dirichlet draws per alpha."""
    sets = []
    for alpha in config.dirichlet_alphas:
        for draw in range(config.draws):
            sets.append(
                (f"dirichlet{alpha:g}_{draw}", alpha, rng.dirichlet([alpha] * 10))
            )
    return sets


def sample_with_priors(labels, priors, size, rng) -> np.ndarray:
    """Indices of `size` examples (with replacement) whose classes follow `priors`."""
    counts = rng.multinomial(size, priors)
    return np.concatenate(
        [
            rng.choice(np.flatnonzero(labels == k), count, replace=True)
            for k, count in enumerate(counts)
            if count
        ]
    )


# Run -----------------------------------------------------------------------------


def run(output, quick: bool = False, seed: int = 0) -> Report:
    """The three shifts; writes the figures to `output`."""
    config = DistributionShiftStudyConfig(seed=seed, **(QUICK if quick else {}))
    os.makedirs(output, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    results = Results()
    domains = load_domains(config.seed)
    digits_x, digits_y = domains["digits"]
    mnist_x, mnist_y = domains["mnist"]

    # 1. Covariate shift: digits -> MNIST 8x8 --------------------------------------
    from kerasdl.data import embedded_images

    train, validation, test = embedded_images.split_indices("digits")
    source_train = (digits_x[train], digits_y[train])
    source_test = (digits_x[test], digits_y[test])
    unlabeled, target_test, target_train = split(
        mnist_y, (len(mnist_y) // 2, len(mnist_y) // 4, len(train)), config.seed
    )
    target_test_x, target_test_y = mnist_x[target_test], mnist_y[target_test]

    source_model = train_classifier(config, *source_train)
    source_accuracy = accuracy(
        probabilities(source_model, source_test[0]), source_test[1]
    )
    shifted_accuracy = accuracy(
        probabilities(source_model, target_test_x), target_test_y
    )
    weights_covariate = importance_weights(source_train[0], mnist_x[unlabeled], config)
    weighted_model = train_classifier(
        config, *source_train, sample_weight=weights_covariate
    )
    weighted_accuracy = accuracy(
        probabilities(weighted_model, target_test_x), target_test_y
    )
    oracle_model = train_classifier(
        config, mnist_x[target_train], mnist_y[target_train]
    )
    oracle_accuracy = accuracy(
        probabilities(oracle_model, target_test_x), target_test_y
    )
    auc = domain_auc(source_train[0], mnist_x[unlabeled], config.domain_c, config.seed)
    for metric, value in (
        ("source_test_accuracy", source_accuracy),
        ("target_accuracy", shifted_accuracy),
        ("importance_weighted_accuracy", weighted_accuracy),
        ("oracle_accuracy", oracle_accuracy),
        ("domain_auc", auc),
        ("effective_sample_size", effective_sample_size(weights_covariate)),
        ("source_train_size", len(weights_covariate)),
        ("max_weight", weights_covariate.max()),
    ):
        results.add(metric, value, shift="covariate")
    print(
        f"  covariate: source {source_accuracy:.3f}, target {shifted_accuracy:.3f}, "
        f"importance-weighted {weighted_accuracy:.3f}, oracle {oracle_accuracy:.3f}, "
        f"domain AUC {auc:.3f}, "
        f"ESS {effective_sample_size(weights_covariate):.0f}/{len(weights_covariate)}"
    )

    # 2. Label shift within MNIST 8x8 ---------------------------------------------
    label_train, label_validation, label_pool = split(
        mnist_y,
        (config.label_train_size, config.label_validation_size, len(mnist_y)),
        config.seed + 1,
    )
    label_model = train_classifier(config, mnist_x[label_train], mnist_y[label_train])
    source_priors = np.bincount(mnist_y[label_train], minlength=10) / len(label_train)
    joint = confusion_joint(
        probabilities(label_model, mnist_x[label_validation]), mnist_y[label_validation]
    )
    pool_x, pool_y = mnist_x[label_pool], mnist_y[label_pool]
    pool_p = probabilities(label_model, pool_x)
    results.add("unshifted_accuracy", accuracy(pool_p, pool_y), shift="label")
    shifts = shifted_priors(config, rng)
    label_rows = []
    for name, alpha, priors in shifts:
        index = sample_with_priors(pool_y, priors, config.shifted_test_size, rng)
        p, y = pool_p[index], pool_y[index]
        true_priors = np.bincount(y, minlength=10) / len(y)
        true_w = true_priors / source_priors
        w = bbse_weights(joint, p)
        estimated_priors = w * source_priors
        estimated_priors = estimated_priors / max(estimated_priors.sum(), 1e-12)
        row = {
            "alpha": alpha,
            "uncorrected_accuracy": accuracy(p, y),
            "bbse_accuracy": accuracy(reweight(p, w), y),
            "oracle_prior_accuracy": accuracy(reweight(p, true_w), y),
            "prior_error_bbse": float(np.abs(estimated_priors - true_priors).sum()),
            "prior_error_source": float(np.abs(source_priors - true_priors).sum()),
            "max_prior": float(true_priors.max()),
        }
        label_rows.append((name, index, row))
    # Importance weighting on the most skewed sets (a retraining each).
    label_rows.sort(key=lambda item: -item[2]["prior_error_source"])
    for name, index, row in label_rows[: config.iw_label_shift_sets]:
        weights = importance_weights(mnist_x[label_train], pool_x[index], config)
        model = train_classifier(
            config, mnist_x[label_train], mnist_y[label_train], sample_weight=weights
        )
        row["importance_weighted_accuracy"] = accuracy(
            probabilities(model, pool_x[index]), pool_y[index]
        )
    for name, _, row in sorted(label_rows, key=lambda item: item[0]):
        for metric, value in row.items():
            results.add(metric, value, shift="label", test_set=name)
        print(
            f"  label {name}: uncorrected {row['uncorrected_accuracy']:.3f}, BBSE "
            f"{row['bbse_accuracy']:.3f}, true priors "
            f"{row['oracle_prior_accuracy']:.3f}, prior error "
            f"{row['prior_error_source']:.2f} -> {row['prior_error_bbse']:.2f}"
            + (
                f", IW {row['importance_weighted_accuracy']:.3f}"
                if "importance_weighted_accuracy" in row
                else ""
            )
        )

    # 3. Concept shift: the same images, two labels swapped -----------------------
    a, b = config.swapped_classes
    concept_y = source_test[1].copy()
    concept_y[source_test[1] == a], concept_y[source_test[1] == b] = b, a
    source_test_p = probabilities(source_model, source_test[0])
    source_joint = confusion_joint(
        probabilities(source_model, digits_x[validation]), digits_y[validation]
    )
    source_class_priors = np.bincount(source_train[1], minlength=10) / len(train)
    w = bbse_weights(source_joint, source_test_p)
    estimated = w * source_class_priors / max((w * source_class_priors).sum(), 1e-12)
    # Unlabeled data are the same images: a domain classifier sees no shift.
    concept_auc = domain_auc(
        source_train[0], source_test[0], config.domain_c, config.seed
    )
    for metric, value in (
        ("accuracy_before", accuracy(source_test_p, source_test[1])),
        ("accuracy_after", accuracy(source_test_p, concept_y)),
        ("domain_auc", concept_auc),
        ("prior_change_bbse", float(np.abs(estimated - source_class_priors).sum())),
    ):
        results.add(metric, value, shift="concept")
    print(
        f"  concept: accuracy {accuracy(source_test_p, source_test[1]):.3f} -> "
        f"{accuracy(source_test_p, concept_y):.3f}, domain AUC {concept_auc:.3f}"
    )

    figures = [
        plot_covariate_shift(
            domains, results, os.path.join(output, "covariate_shift.png")
        ),
        plot_label_shift(results, os.path.join(output, "label_shift.png")),
    ]
    notes = (
        f"Classifier: kerasdl mlp, {config.depth} hidden layers of {config.width}, "
        f"{config.epochs} epochs of Adam ({config.learning_rate}), batch "
        f"{config.batch_size}. Covariate shift: {len(train)} digits to train, "
        f"{len(test)} to test; MNIST-8x8: {len(unlabeled)} unlabeled, "
        f"{len(target_test)} to score, {len(target_train)} for the oracle. "
        f"Importance weights from LogisticRegression(C={config.domain_c}), clipped "
        f"at {config.max_weight:g} times the mean. Label shift: MNIST-8x8 "
        f"{config.label_train_size} to train, {config.label_validation_size} for "
        f"the confusion matrix, test sets of {config.shifted_test_size} drawn from "
        f"the remaining {len(label_pool)} with Dirichlet priors "
        f"(α = {list(config.dirichlet_alphas)}, {config.draws} draws each). "
        f"Concept shift: classes {a} and {b} swap labels on the digits test set. "
        "One seed; the label-shift sets give a spread. Importance weighting needs "
        "the source to cover the target: here a linear domain classifier tells the "
        f"two apart at AUC {auc:.2f}, so the clipped weights leave an effective "
        f"sample size of {effective_sample_size(weights_covariate):.0f} of "
        f"{len(weights_covariate)} source images."
    )
    return Report(results, judge(results), figures=figures, notes=notes)


# Verdicts ------------------------------------------------------------------------


def judge(results: Results) -> list[Verdict]:
    """The verdict of every claim, from `results` alone."""
    verdicts = []
    covariate = {"shift": "covariate"}
    source = results.value("source_test_accuracy", **covariate)
    target = results.value("target_accuracy", **covariate)
    weighted = results.value("importance_weighted_accuracy", **covariate)
    oracle = results.value("oracle_accuracy", **covariate)
    auc = results.value("domain_auc", **covariate)
    ess = results.value("effective_sample_size", **covariate)
    n = results.value("source_train_size", **covariate)
    drop = source - target
    verdicts.append(
        Verdict(
            _CLAIMS["covariate_shift_hurts"],
            verdict(drop >= LARGE_DROP, drop >= SOME_DROP),
            f"accuracy {source:.3f} on digits test, {target:.3f} on MNIST-8x8 "
            f"(drop {drop:.3f}); a model trained on MNIST-8x8 gets {oracle:.3f}; "
            f"domain classifier AUC {auc:.3f}",
            f"holds if accuracy drops by at least {LARGE_DROP:g} from source to "
            f"target; partly if by at least {SOME_DROP:g}",
            "covariate_shift.png",
        )
    )
    gap = oracle - target
    recovered = (weighted - target) / gap if gap > 0 else 0.0
    verdicts.append(
        Verdict(
            _CLAIMS["covariate_shift_correction"],
            verdict(recovered >= RECOVERY, weighted - target >= MIN_GAIN),
            f"importance-weighted {weighted:.3f} vs unweighted {target:.3f} "
            f"({recovered:.0%} of the gap to the oracle's {oracle:.3f}); effective "
            f"sample size {ess:.0f} of {n:.0f}",
            f"holds if importance weighting recovers at least {RECOVERY:.0%} of the "
            f"gap between the unweighted model and the oracle; partly if it gains at "
            f"least {MIN_GAIN}",
            "covariate_shift.png",
        )
    )

    label = results.select("uncorrected_accuracy", shift="label")
    names = [row["test_set"] for row in label]

    def mean(metric, sets=names):
        return float(
            np.mean([results.value(metric, shift="label", test_set=s) for s in sets])
        )

    uncorrected, bbse = mean("uncorrected_accuracy"), mean("bbse_accuracy")
    oracle_priors = mean("oracle_prior_accuracy")
    error_before, error_after = mean("prior_error_source"), mean("prior_error_bbse")
    wins = sum(
        results.value("bbse_accuracy", shift="label", test_set=s)
        > results.value("uncorrected_accuracy", shift="label", test_set=s)
        for s in names
    )
    label_gap = oracle_priors - uncorrected
    bbse_recovered = (bbse - uncorrected) / label_gap if label_gap > 0 else 0.0
    verdicts.append(
        Verdict(
            _CLAIMS["label_shift_correction"],
            verdict(
                bbse - uncorrected >= MIN_GAIN
                and bbse_recovered >= RECOVERY
                and error_after < error_before,
                bbse - uncorrected >= MIN_GAIN or error_after < error_before,
            ),
            f"mean over {len(names)} shifted sets: accuracy "
            f"{uncorrected:.3f} uncorrected, {bbse:.3f} with BBSE "
            f"({bbse_recovered:.0%} of the way to {oracle_priors:.3f} with the true "
            f"priors; better on {wins}/{len(names)}); prior L1 error "
            f"{error_before:.3f} -> {error_after:.3f} (unshifted accuracy "
            f"{results.value('unshifted_accuracy', shift='label'):.3f})",
            f"holds if BBSE raises mean accuracy by at least {MIN_GAIN}, recovers at "
            f"least {RECOVERY:.0%} of the gain that the true priors give, and "
            "estimates the priors better than assuming no shift; partly if it "
            "raises accuracy or estimates the priors better",
            "label_shift.png",
        )
    )

    both = [
        s
        for s in names
        if results.select("importance_weighted_accuracy", shift="label", test_set=s)
    ]
    if both:
        iw = mean("importance_weighted_accuracy", both)
        bbse_both = mean("bbse_accuracy", both)
        base_both = mean("uncorrected_accuracy", both)
        measured = (
            f"on the {len(both)} most skewed sets: BBSE {bbse_both:.3f}, importance "
            f"weighting {iw:.3f}, uncorrected {base_both:.3f}"
        )
        holds, partly = bbse_both > iw + MIN_GAIN, bbse_both >= iw - MIN_GAIN
    else:
        measured, holds, partly = (
            "importance weighting not run on label shift",
            False,
            False,
        )
    verdicts.append(
        Verdict(
            _CLAIMS["label_shift_methods_preferable"],
            verdict(holds, partly),
            measured,
            f"holds if BBSE's accuracy beats importance weighting's by more than "
            f"{MIN_GAIN} on the label-shifted sets both were run on; partly if within "
            f"{MIN_GAIN}",
            "label_shift.png",
        )
    )

    concept = {"shift": "concept"}
    before = results.value("accuracy_before", **concept)
    after = results.value("accuracy_after", **concept)
    concept_auc = results.value("domain_auc", **concept)
    prior_change = results.value("prior_change_bbse", **concept)
    unseen = concept_auc <= UNDETECTABLE_AUC and prior_change <= PRIOR_ERROR
    verdicts.append(
        Verdict(
            _CLAIMS["concept_shift_hard_to_detect"],
            verdict(
                unseen and before - after >= LARGE_DROP,
                unseen or concept_auc <= UNDETECTABLE_AUC,
            ),
            f"accuracy {before:.3f} -> {after:.3f} after the swap; domain classifier "
            f"AUC {concept_auc:.3f}; BBSE's priors move by {prior_change:.3f} (L1)",
            f"holds if accuracy falls by at least {LARGE_DROP:g} while a domain "
            f"classifier is at most {UNDETECTABLE_AUC} AUC and BBSE's estimated "
            f"priors move by at most {PRIOR_ERROR} (unlabeled data show nothing); "
            "partly if the domain classifier alone sees nothing",
            None,
        )
    )
    return verdicts


# Figures -------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_covariate_shift(domains, results, path) -> str:
    """Left: examples of each domain per class; right: accuracies."""
    plt = _pyplot()
    figure = plt.figure(figsize=(13, 4.5))
    grid = figure.add_gridspec(2, 12)
    for row, (name, (x, y)) in enumerate(domains.items()):
        for k in range(10):
            ax = figure.add_subplot(grid[row, k])
            first = np.flatnonzero(y == k)[0]
            ax.imshow(x[first, :, :, 0], cmap="gray_r", vmin=0, vmax=16)
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_ylabel("digits" if name == "digits" else "MNIST 8x8")
    ax = figure.add_subplot(grid[:, 10:])
    covariate = {"shift": "covariate"}
    bars = [
        ("digits\ntest", results.value("source_test_accuracy", **covariate)),
        ("MNIST", results.value("target_accuracy", **covariate)),
        ("MNIST\nweighted", results.value("importance_weighted_accuracy", **covariate)),
        ("MNIST\noracle", results.value("oracle_accuracy", **covariate)),
    ]
    ax.bar(range(len(bars)), [v for _, v in bars], color=["C0", "C3", "C1", "C2"])
    for i, (_, v) in enumerate(bars):
        ax.text(i, v + 0.01, f"{v:.2f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(bars)), [label for label, _ in bars], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_title("accuracy")
    figure.suptitle(
        "Covariate shift: trained on digits, tested on MNIST reduced to "
        "the same 8x8 grid"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return os.path.basename(path)


def plot_label_shift(results, path) -> str:
    """Accuracy per shifted test set (uncorrected, BBSE, true priors, IW) and prior errors."""
    plt = _pyplot()
    rows = results.select("uncorrected_accuracy", shift="label")
    names = sorted(
        (row["test_set"] for row in rows),
        key=lambda s: results.value("prior_error_source", shift="label", test_set=s),
    )
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    x = np.arange(len(names))
    for i, (metric, label) in enumerate(
        (
            ("uncorrected_accuracy", "uncorrected"),
            ("bbse_accuracy", "BBSE reweighted"),
            ("oracle_prior_accuracy", "true priors"),
            ("importance_weighted_accuracy", "importance weighted"),
        )
    ):
        values = [results.select(metric, shift="label", test_set=s) for s in names]
        xs = [j for j, v in zip(x, values) if v]
        axes[0].plot(
            xs,
            [v[0]["value"] for v in values if v],
            "o-" if i < 3 else "s",
            label=label,
            color=f"C{i}",
        )
    axes[0].axhline(
        results.value("unshifted_accuracy", shift="label"),
        color="gray",
        ls=":",
        label="unshifted test pool",
    )
    axes[0].set_xticks(x, names, rotation=35, ha="right", fontsize=7)
    axes[0].set_ylabel("accuracy")
    axes[0].set_title("test sets, least to most skewed")
    axes[0].legend(fontsize=8)
    for metric, label in (
        ("prior_error_source", "assuming no shift"),
        ("prior_error_bbse", "BBSE estimate"),
    ):
        axes[1].plot(
            x,
            [results.value(metric, shift="label", test_set=s) for s in names],
            "o-",
            label=label,
        )
    axes[1].set_xticks(x, names, rotation=35, ha="right", fontsize=7)
    axes[1].set_ylabel("L1 error of the class priors")
    axes[1].set_title("estimating q(y) from unlabeled test data")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    figure.suptitle(
        "Label shift on MNIST 8x8 (Dirichlet priors): BBSE (Lipton et al. 2018)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return os.path.basename(path)
