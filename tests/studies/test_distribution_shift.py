"""The distribution-shift study: a --quick run writes its files; BBSE; the rules."""

import csv

import matplotlib.image
import numpy as np

from kerasdl import cli
from kerasdl.studies import distribution_shift as study
from kerasdl.studies.framework import DOES_NOT_HOLD, HOLDS, PARTLY, Results

FIGURES = ("covariate_shift.png", "label_shift.png")


def test_quick_run_writes_results_summary_and_figures(tmp_path):
    argv = ["study", "distribution_shift", "--quick", "--output", str(tmp_path)]
    assert cli.main(argv) == 0
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    metrics = {(row["shift"], row["metric"]) for row in rows}
    for expected in (
        ("covariate", "source_test_accuracy"),
        ("covariate", "target_accuracy"),
        ("covariate", "importance_weighted_accuracy"),
        ("covariate", "oracle_accuracy"),
        ("covariate", "domain_auc"),
        ("label", "uncorrected_accuracy"),
        ("label", "bbse_accuracy"),
        ("label", "oracle_prior_accuracy"),
        ("label", "importance_weighted_accuracy"),
        ("concept", "accuracy_after"),
    ):
        assert expected in metrics
    for row in rows:
        assert np.isfinite(float(row["value"]))
    summary = (tmp_path / "summary.md").read_text()
    for claim in study.CLAIMS:
        assert claim.quote in summary
    assert summary.count("**Verdict:") == len(study.CLAIMS)
    for name in FIGURES:
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] > 200 and np.std(image[..., :3]) > 0.02


def test_mnist_is_reduced_to_the_digits_grid():
    image = np.zeros((1, 28, 28), "uint8")
    image[0, 4:24, 12:16] = 255  # a vertical bar, a "1"
    grid = study.mnist_to_digits_grid(image)
    assert grid.shape == (1, 8, 8, 1) and grid.dtype == np.float32
    assert grid.min() == 0 and 0 < grid.max() <= 16
    # The bar fills the height (bounding box) and stays centered and narrow.
    assert (grid[0, :, :, 0].sum(axis=1) > 0).all()
    assert grid[0, :, [0, 1, 6, 7], 0].sum() == 0


def test_bbse_recovers_the_target_priors_from_a_known_confusion_matrix():
    source = np.full(3, 1 / 3)
    confusion = np.array([[0.8, 0.1, 0.0], [0.2, 0.8, 0.1], [0.0, 0.1, 0.9]])
    joint = confusion * source[None, :]  # P(ŷ=i, y=j)
    target = np.array([0.6, 0.3, 0.1])
    predicted = confusion @ target  # P(ŷ=i) on the target
    # Probability rows whose argmax follows the predicted-class proportions.
    counts = np.round(predicted * 1000).astype(int)
    p = np.concatenate(
        [np.tile(np.eye(3)[i] * 0.5 + 0.5 / 3, (n, 1)) for i, n in enumerate(counts)]
    )
    w = study.bbse_weights(joint, p)
    np.testing.assert_allclose(w * source, target, atol=5e-3)
    # Reweighting moves an uncertain prediction to the now frequent class.
    adjusted = study.reweight(np.array([[0.4, 0.45, 0.15]]), w)
    assert adjusted.argmax() == 0 and np.isclose(adjusted.sum(), 1.0)


def test_importance_weights_favor_source_examples_that_look_like_the_target():
    config = study.DistributionShiftStudyConfig()
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 16, size=(400, 8, 8, 1))
    target = source[:200] + 4.0  # brighter
    weights = study.importance_weights(source, np.clip(target, 0, 16), config)
    assert np.isclose(weights.mean(), 1.0)
    brightness = source.reshape(400, -1).mean(axis=1)
    assert np.corrcoef(brightness, weights)[0, 1] > 0.3
    assert study.effective_sample_size(np.ones(10)) == 10


# judge ---------------------------------------------------------------------------


def fixed_results(covariate=None, label=None, concept=None):
    covariate = {
        "source_test_accuracy": 0.97,
        "target_accuracy": 0.60,
        "importance_weighted_accuracy": 0.70,
        "oracle_accuracy": 0.90,
        "domain_auc": 0.95,
        "effective_sample_size": 300,
        "source_train_size": 1259,
        **(covariate or {}),
    }
    label = label or {
        "a": {
            "uncorrected_accuracy": 0.80,
            "bbse_accuracy": 0.88,
            "oracle_prior_accuracy": 0.90,
            "prior_error_bbse": 0.1,
            "prior_error_source": 1.0,
            "importance_weighted_accuracy": 0.82,
        },
        "b": {
            "uncorrected_accuracy": 0.85,
            "bbse_accuracy": 0.90,
            "oracle_prior_accuracy": 0.91,
            "prior_error_bbse": 0.1,
            "prior_error_source": 0.8,
        },
    }
    concept = {
        "accuracy_before": 0.97,
        "accuracy_after": 0.78,
        "domain_auc": 0.5,
        "prior_change_bbse": 0.05,
        **(concept or {}),
    }
    results = Results()
    for metric, value in covariate.items():
        results.add(metric, value, shift="covariate")
    results.add("unshifted_accuracy", 0.9, shift="label")
    for name, row in label.items():
        for metric, value in row.items():
            results.add(metric, value, shift="label", test_set=name)
    for metric, value in concept.items():
        results.add(metric, value, shift="concept")
    return results


def verdicts_of(results):
    return {v.claim.key: v.verdict for v in study.judge(results)}


def test_judge_holding():
    assert verdicts_of(fixed_results()) == {c.key: HOLDS for c in study.CLAIMS}


def test_judge_partly():
    label = {
        "a": {
            "uncorrected_accuracy": 0.80,
            "bbse_accuracy": 0.80,
            "oracle_prior_accuracy": 0.90,
            "prior_error_bbse": 0.5,
            "prior_error_source": 1.0,
            "importance_weighted_accuracy": 0.802,
        },
    }
    verdicts = verdicts_of(
        fixed_results(
            covariate={
                "target_accuracy": 0.92,
                "importance_weighted_accuracy": 0.93,
                "oracle_accuracy": 0.99,
            },
            label=label,
            concept={"prior_change_bbse": 0.4},
        )
    )
    assert verdicts == {
        "covariate_shift_hurts": PARTLY,  # a 0.05 drop
        "covariate_shift_correction": PARTLY,  # +0.01, 14% of the gap
        "label_shift_correction": PARTLY,  # priors better, accuracy not
        "label_shift_methods_preferable": PARTLY,  # within 0.005
        "concept_shift_hard_to_detect": PARTLY,  # the priors seem to move
    }


def test_judge_failing():
    label = {
        "a": {
            "uncorrected_accuracy": 0.80,
            "bbse_accuracy": 0.75,
            "oracle_prior_accuracy": 0.90,
            "prior_error_bbse": 1.5,
            "prior_error_source": 1.0,
            "importance_weighted_accuracy": 0.85,
        },
    }
    verdicts = verdicts_of(
        fixed_results(
            covariate={"target_accuracy": 0.96, "importance_weighted_accuracy": 0.90},
            label=label,
            concept={"domain_auc": 0.9},
        )
    )
    assert verdicts == {c.key: DOES_NOT_HOLD for c in study.CLAIMS}
