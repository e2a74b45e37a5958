"""The degradation study: the quick run writes its files; the verdict rules."""

import csv
import math

import matplotlib.image
import numpy as np
import pytest

from kerasdl import cli
from kerasdl.studies import degradation
from kerasdl.studies.framework import DOES_NOT_HOLD, HOLDS, PARTLY, Results

FIGURES = ("training_error.png", "training_curves.png")


def test_quick_run_writes_results_summary_and_figures(tmp_path):
    assert cli.main(["study", "degradation", "--quick", "--output", str(tmp_path)]) == 0

    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["metric"] for row in rows} == {
        "epoch_train_error",
        "train_error",
        "test_error",
        "final_train_loss",
        "parameters",
        "seconds",
    }
    depths = {int(row["depth"]) for row in rows}
    assert depths == set(degradation.QUICK.depths)
    for depth in depths:  # plain and residual twins: the same parameters
        counts = {
            row["kind"]: row["value"]
            for row in rows
            if row["metric"] == "parameters" and int(row["depth"]) == depth
        }
        assert counts["plain"] == counts["residual"]
    for row in rows:
        assert math.isfinite(float(row["value"]))

    summary = (tmp_path / "summary.md").read_text()
    for claim in degradation.CLAIMS:
        assert f"> {claim.quote}" in summary and claim.article in summary
    assert summary.count("**Verdict:") == len(degradation.CLAIMS)
    for figure in FIGURES:
        image = matplotlib.image.imread(tmp_path / figure)
        assert np.std(image[..., :3]) > 0.01  # something is drawn


def make_results(plain, residual):
    """Training errors at depths 8/20/32/56, as a run would record them."""
    results = Results()
    for kind, errors in (("plain", plain), ("residual", residual)):
        for depth, error in zip((8, 20, 32, 56), errors):
            results.add("train_error", error, kind=kind, depth=depth)
            results.add("test_error", error + 0.01, kind=kind, depth=depth)
    return results


CASES = {
    # The paper's picture: plain climbs with depth, residual falls.
    HOLDS: make_results(
        plain=(0.05, 0.04, 0.06, 0.10), residual=(0.05, 0.03, 0.03, 0.02)
    ),
    # Plain-56 is worse than plain-8 but not than plain-20; resnet-56 is worse
    # than resnet-20 but still better than plain-56.
    PARTLY: make_results(
        plain=(0.02, 0.09, 0.10, 0.10), residual=(0.02, 0.02, 0.04, 0.06)
    ),
    # Deeper is better for both, plain as good as residual.
    DOES_NOT_HOLD: make_results(
        plain=(0.08, 0.05, 0.04, 0.03), residual=(0.02, 0.01, 0.03, 0.06)
    ),
}


@pytest.mark.parametrize("expected", [HOLDS, PARTLY, DOES_NOT_HOLD])
def test_judge_gives_the_verdict_the_rules_say(expected):
    verdicts = degradation.judge(CASES[expected])
    assert [v.claim.key for v in verdicts] == [c.key for c in degradation.CLAIMS]
    assert [v.verdict for v in verdicts] == [expected, expected]
    for v in verdicts:
        assert v.measured and v.rule and v.figure in FIGURES


def test_judge_compares_the_deepest_with_depth_20():
    verdicts = degradation.judge(CASES[HOLDS])
    assert "+6.0 pp" in verdicts[0].measured  # plain 56 minus plain 20
    assert "-1.0 pp" in verdicts[1].measured  # resnet 56 minus resnet 20
