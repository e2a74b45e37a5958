"""The capacity study: a --quick run writes its files; the verdict rules."""

import csv

import matplotlib.image
import numpy as np

from kerasdl import cli
from kerasdl.studies import capacity as study
from kerasdl.studies.framework import DOES_NOT_HOLD, HOLDS, PARTLY, Results

FIGURES = ("polynomial_curves.png", "polynomial_vs_data.png", "weight_decay.png")


def test_quick_run_writes_results_summary_and_figures(tmp_path):
    assert cli.main(["study", "capacity", "--quick", "--output", str(tmp_path)]) == 0
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    experiments = {(row["experiment"], row["metric"]) for row in rows}
    for expected in (
        ("polynomial", "train_loss"),
        ("polynomial", "test_loss"),
        ("polynomial", "noise_loss"),
        ("weight_decay", "train_loss"),
        ("weight_decay", "test_loss"),
        ("weight_decay", "weight_norm"),
    ):
        assert expected in experiments
    degrees = {row["degree"] for row in rows if row["experiment"] == "polynomial"}
    assert {"1", "3", "19"} <= degrees
    for row in rows:
        assert np.isfinite(float(row["value"]))
    summary = (tmp_path / "summary.md").read_text()
    for claim in study.CLAIMS:
        assert claim.quote in summary
    assert summary.count("**Verdict:") == len(study.CLAIMS)
    for name in FIGURES:
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] > 200 and np.std(image[..., :3]) > 0.02


def test_polynomial_features_follow_d2l():
    config = study.CapacityStudyConfig()
    features, labels = study.polynomial_data(config, 5, np.random.default_rng(0))
    x = features[:, 1]
    assert features.shape == (5, 20) and labels.shape == (5, 1)
    np.testing.assert_allclose(features[:, 0], 1.0)
    np.testing.assert_allclose(features[:, 3], x**3 / 6, rtol=1e-5)
    expected = 5 + 1.2 * x - 3.4 * x**2 / 2 + 5.6 * x**3 / 6
    assert np.max(np.abs(labels[:, 0] - expected)) < 0.5  # noise std 0.1


# judge ---------------------------------------------------------------------------


def fixed_results(poly=None, decay=None):
    """Hand-made results: `poly[(degree, size)] = (train, test)`, `decay[λ] = (...)`."""
    poly = poly or {
        (1, 10): (2.0, 25.0),
        (3, 10): (0.01, 0.05),
        (19, 10): (0.001, 2.0),
        (1, 100): (5.0, 20.0),
        (3, 100): (0.01, 0.012),
        (19, 100): (0.01, 0.05),
    }
    decay = decay or {0.0: (1e-9, 150.0, 13.0), 3.0: (1e-3, 0.03, 0.05)}
    results = Results()
    for (degree, size), (train, test) in poly.items():
        for split, value in (("train", train), ("test", test)):
            results.add(
                f"{split}_loss",
                value,
                experiment="polynomial",
                degree=degree,
                parameters=degree + 1,
                train_size=size,
            )
    for strength, (train, test, norm) in decay.items():
        results.add("train_loss", train, experiment="weight_decay", l2=strength)
        results.add("test_loss", test, experiment="weight_decay", l2=strength)
        results.add("weight_norm", norm, experiment="weight_decay", l2=strength)
    return results


def verdicts_of(results):
    return {v.claim.key: v.verdict for v in study.judge(results)}


def test_judge_holding():
    verdicts = verdicts_of(fixed_results())
    assert verdicts == {claim.key: HOLDS for claim in study.CLAIMS}


def test_judge_partly():
    poly = {
        (1, 10): (2.0, 25.0),
        (3, 10): (0.01, 3.0),  # degree 3 as bad as degree 19 on test
        (19, 10): (0.001, 2.0),
        (1, 100): (5.0, 0.05),  # degree 1: high train MSE only
        (3, 100): (0.01, 0.012),
        (19, 100): (0.01, 0.05),
    }
    decay = {0.0: (1e-9, 150.0, 13.0), 3.0: (1e-3, 100.0, 0.05)}  # shrinks only
    verdicts = verdicts_of(fixed_results(poly, decay))
    assert verdicts["underfitting"] == PARTLY
    assert verdicts["overfitting"] == PARTLY
    assert verdicts["weight_decay"] == PARTLY


def test_judge_failing():
    poly = {
        (1, 10): (2.0, 25.0),
        (3, 10): (0.01, 0.05),
        (19, 10): (0.01, 0.012),  # no overfitting with few data
        (1, 100): (0.01, 0.012),  # degree 1 fits as well as degree 3
        (3, 100): (0.01, 0.012),
        (19, 100): (0.001, 0.5),  # overfitting grows with data
    }
    decay = {0.0: (1e-3, 0.03, 0.05), 3.0: (1e-9, 150.0, 13.0)}
    verdicts = verdicts_of(fixed_results(poly, decay))
    assert verdicts == {claim.key: DOES_NOT_HOLD for claim in study.CLAIMS}
