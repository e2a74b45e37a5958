"""The normalization study: the quick run writes its files; the verdict rules."""

import csv
import math

import matplotlib.image
import numpy as np
import pytest

from kerasdl import cli
from kerasdl.studies import normalization
from kerasdl.studies.framework import DOES_NOT_HOLD, HOLDS, PARTLY, Results

FIGURES = (
    "batch_size.png",
    "training_speed.png",
    "learning_rate.png",
    "statistics_gap.png",
)
METRICS = {
    "test_error",
    "moving_mean_error",
    "moving_variance_error",
    "batch_mean_error",
    "train_mode_test_error",
    "inference_test_error",
    "final_validation_accuracy",
    "epochs_to_target",
}


def test_quick_run_writes_results_summary_and_figures(tmp_path):
    assert (
        cli.main(["study", "normalization", "--quick", "--output", str(tmp_path)]) == 0
    )

    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["metric"] for row in rows} == METRICS
    assert {row["normalization"] for row in rows} == set(normalization.NORMALIZATIONS)
    for row in rows:
        value = float(row["value"])
        assert math.isfinite(value) or row["metric"] == "epochs_to_target"

    summary = (tmp_path / "summary.md").read_text()
    for claim in normalization.CLAIMS:
        assert f"> {claim.quote}" in summary and claim.article in summary
    assert summary.count("**Verdict:") == len(normalization.CLAIMS)
    for figure in FIGURES:
        image = matplotlib.image.imread(tmp_path / figure)
        assert np.std(image[..., :3]) > 0.01  # something is drawn


def make_results(
    penalties,
    epochs_none,
    epochs_batch,
    accuracy_none,
    accuracy_batch,
    moving_mean_errors,
    moving_variance_errors,
):
    """Results shaped like a run's, from the figures each rule reads."""
    results = Results()
    for normalization_name, penalty in penalties.items():
        for batch_size in (2, 4, 8, 16, 32, 64):
            error = 0.05 + (penalty if batch_size <= 4 else 0.0)
            results.add(
                "test_error",
                error,
                experiment="batch_size",
                normalization=normalization_name,
                batch_size=batch_size,
            )
    rates = (0.01, 0.03, 0.1, 0.3, 1.0)
    for name, epochs, accuracy in (
        ("none", epochs_none, accuracy_none),
        ("batch", epochs_batch, accuracy_batch),
    ):
        for rate, e, a in zip(rates, epochs, accuracy):
            configuration = {
                "experiment": "learning_rate",
                "normalization": name,
                "learning_rate": rate,
            }
            results.add("final_validation_accuracy", a, **configuration)
            results.add("epochs_to_target", e, target=0.95, **configuration)
    for batch_size, mean_error, variance_error in zip(
        (2, 4, 8, 16, 32, 64), moving_mean_errors, moving_variance_errors
    ):
        configuration = {
            "experiment": "statistics",
            "normalization": "batch",
            "batch_size": batch_size,
        }
        results.add("moving_mean_error", mean_error, **configuration)
        results.add("moving_variance_error", variance_error, **configuration)
        results.add("batch_mean_error", 0.3 / math.sqrt(batch_size), **configuration)
        results.add("train_mode_test_error", 0.06, **configuration)
        results.add("inference_test_error", 0.05, **configuration)
    return results


inf = math.inf
CASES = {
    HOLDS: make_results(
        {"batch": 0.05, "layer": 0.0, "group": 0.005},
        epochs_none=(inf, 12, 8, inf, inf),
        epochs_batch=(10, 5, 3, 2, 3),
        accuracy_none=(0.93, 0.96, 0.97, 0.1, 0.1),
        accuracy_batch=(0.97, 0.97, 0.97, 0.97, 0.97),
        moving_mean_errors=[0.02] * 6,
        moving_variance_errors=[0.05] * 6,
    ),
    PARTLY: make_results(
        {"batch": 0.05, "layer": 0.0, "group": 0.04},
        epochs_none=(inf, 10, 8, 9, inf),
        epochs_batch=(12, 8, 4, 5, inf),
        accuracy_none=(0.93, 0.96, 0.97, 0.95, 0.1),
        accuracy_batch=(0.95, 0.97, 0.97, 0.96, 0.5),
        moving_mean_errors=[0.3, 0.02, 0.02, 0.02, 0.02, 0.02],
        moving_variance_errors=[0.05] * 6,
    ),
    DOES_NOT_HOLD: make_results(
        {"batch": 0.0, "layer": 0.0, "group": 0.0},
        epochs_none=(inf, 6, 4, 4, inf),
        epochs_batch=(inf, 6, 4, 4, inf),
        accuracy_none=(0.93, 0.96, 0.97, 0.95, 0.1),
        accuracy_batch=(0.93, 0.97, 0.5, 0.1, 0.1),
        moving_mean_errors=[0.3] * 6,
        moving_variance_errors=[0.5] * 6,
    ),
}


@pytest.mark.parametrize("expected", [HOLDS, PARTLY, DOES_NOT_HOLD])
def test_judge_gives_the_verdict_the_rules_say(expected):
    verdicts = normalization.judge(CASES[expected])
    assert [v.claim.key for v in verdicts] == [c.key for c in normalization.CLAIMS]
    assert {v.claim.key: v.verdict for v in verdicts} == {
        c.key: expected for c in normalization.CLAIMS
    }
    for v in verdicts:
        assert v.measured and v.rule and v.figure in FIGURES


def test_judge_reads_results_back_from_csv(tmp_path):
    path = CASES[HOLDS].write_csv(tmp_path / "results.csv")
    verdicts = normalization.judge(Results.read_csv(path))
    assert [v.verdict for v in verdicts] == [HOLDS] * len(normalization.CLAIMS)


def test_small_batch_penalty_compares_the_smallest_and_largest_thirds():
    errors = {2: 0.2, 4: 0.1, 8: 0.0, 16: 0.0, 32: 0.05, 64: 0.05}
    assert normalization._small_batch_penalty(errors) == pytest.approx(0.1)
    assert normalization._small_batch_penalty({16: 0.3, 64: 0.1}) == pytest.approx(0.2)
